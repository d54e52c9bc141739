// Filled in by the shared_memory work.
