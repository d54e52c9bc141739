// Filled in by the synchronize work.
