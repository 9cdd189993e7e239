"""The HTTP API over the rankings in Redis (FastAPI) and the live dashboard it serves at ``/``."""
