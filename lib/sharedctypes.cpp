// Filled in by the sharedctypes work.
