"""Errors of the local services (Kafka and Redis started by kassa)."""

from common.errors import KassaError


class ServiceError(KassaError):
    """A local service could not be fetched, started, reached or stopped."""


class MissingToolError(ServiceError):
    """A program kassa needs to run the local services is not installed."""

    exit_code = 3
