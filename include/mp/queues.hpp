// mp/queues.hpp: being written.
#pragma once
