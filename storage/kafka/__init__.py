"""Kafka as kassa uses it: every client's configuration, topics and their identity, the lag
probe, and the day-window reader (which offsets make a business day, and reading them)."""
