// mp/sharedctypes.hpp: being written.
#pragma once
