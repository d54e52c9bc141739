// mp/process.hpp: being written.
#pragma once
