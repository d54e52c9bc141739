// mp/synchronize.hpp: being written.
#pragma once
