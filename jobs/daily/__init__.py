"""The daily job: a business day's Kafka offset range into Parquet and Redis daily rankings."""
