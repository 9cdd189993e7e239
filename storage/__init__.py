"""Where kassa keeps its results: Redis keys and stores, and the Parquet snapshot layout."""
