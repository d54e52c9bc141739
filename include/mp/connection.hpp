// mp/connection.hpp: being written.
#pragma once
