"""kassa's settings (:class:`Settings`, built by :func:`load_settings`); see :mod:`.model`."""

from common.settings.model import ENV_PREFIX, NOT_SETTINGS, RENAMED, Settings, load_settings

__all__ = ["ENV_PREFIX", "NOT_SETTINGS", "RENAMED", "Settings", "load_settings"]
