// Value, Array, RawValue and RawArray are templates: everything lives in
// include/mp/sharedctypes.hpp and include/mp/detail/sync_shared_cells.hpp.
#include "mp/sharedctypes.hpp"
