// mp/mp.hpp: the whole library. Python's multiprocessing, subprocess and
// multiprocessing.connection for C++20; see docs/porting.md for every name.
#pragma once

#include "mp/connection.hpp"
#include "mp/context.hpp"
#include "mp/detail/archive.hpp"  // cereal support for the standard library
#include "mp/detail/remote_exception.hpp"  // MP_REMOTE_EXCEPTION
#include "mp/errors.hpp"
#include "mp/futures.hpp"
#include "mp/managers.hpp"
#include "mp/object.hpp"
#include "mp/pool.hpp"
#include "mp/process.hpp"
#include "mp/queues.hpp"
#include "mp/shared_memory.hpp"
#include "mp/sharedctypes.hpp"
#include "mp/subprocess.hpp"
#include "mp/synchronize.hpp"
