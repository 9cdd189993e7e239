"""The stream job: Kafka checkouts -> live per-day, per-item figures in Redis, exactly once."""
