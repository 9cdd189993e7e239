"""The root of kassa's error hierarchy.

Every error kassa raises on purpose derives from :class:`KassaError`; its message names the
value that was wrong and what to do about it. Subpackages define their own subclasses in
their ``exceptions.py``.
"""


class KassaError(Exception):
    """Base class of every error kassa raises on purpose."""


class SettingsError(KassaError):
    """A ``KASSA_*`` environment variable has a value kassa cannot use."""
