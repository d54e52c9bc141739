// mp/subprocess.hpp: being written.
#pragma once
