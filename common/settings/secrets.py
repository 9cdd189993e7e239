"""Secret settings: ``SecretStr`` fields that never print, and their ``KASSA_<NAME>_FILE``
variants (the Docker and Kubernetes secrets convention: the variable names a file holding the
secret, e.g. a mounted secret volume).

A secret setting is any field typed ``SecretStr`` (or ``SecretStr | None``); it is read from
``KASSA_<NAME>`` or from the file ``KASSA_<NAME>_FILE`` names, never from both.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from common.errors import SettingsError

FILE_SUFFIX = "_FILE"


def is_secret(field: FieldInfo) -> bool:
    """Whether ``field`` holds a secret (its type is, or may be, ``SecretStr``)."""
    annotation = field.annotation
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def secret_fields(settings_cls: type[BaseSettings]) -> list[str]:
    """The names of the secret fields of ``settings_cls``."""
    return [name for name, field in settings_cls.model_fields.items() if is_secret(field)]


class SecretFileSource(PydanticBaseSettingsSource):
    """Reads each secret field from the file its ``<PREFIX><NAME>_FILE`` variable names.

    The file's content is the secret, without the line break an editor or ``echo`` leaves
    at its end. A variable naming a missing or unreadable file, or set together with the
    secret's own variable, is a :class:`SettingsError` naming both.
    """

    def __init__(self, settings_cls: type[BaseSettings], prefix: str) -> None:
        super().__init__(settings_cls)
        self._prefix = prefix

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` reads every secret file at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in secret_fields(self.settings_cls):
            variable = self._prefix + name.upper()
            file_variable = variable + FILE_SUFFIX
            path = os.environ.get(file_variable)
            if not path:
                continue
            if os.environ.get(variable):
                msg = (
                    f"both {variable} and {file_variable} are set; keep one (the file, for a "
                    "secret kept out of the environment)"
                )
                raise SettingsError(msg)
            try:
                values[name] = Path(path).read_text().removesuffix("\n").removesuffix("\r")
            except OSError as exc:
                msg = (
                    f"{file_variable}={path!r} cannot be read ({exc.strerror or exc}); point it "
                    "at a file this user can read, holding only the secret"
                )
                raise SettingsError(msg) from None
        return values
