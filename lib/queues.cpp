// Filled in by the queues work.
