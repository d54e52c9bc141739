// Filled in by the subprocess work.
