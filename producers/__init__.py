"""Sources of checkouts: the POS simulator, the dataset replay, and the one Kafka producer."""
