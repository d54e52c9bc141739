// mp/pool.hpp: being written.
#pragma once
