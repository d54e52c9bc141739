// Filled in by the process work.
