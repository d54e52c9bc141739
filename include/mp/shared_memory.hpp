// mp/shared_memory.hpp: being written.
#pragma once
