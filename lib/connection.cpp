// Filled in by the connection work.
