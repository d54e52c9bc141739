// Filled in by the listener work.
