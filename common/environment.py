"""kassa's settings against the process's environment: variables that are no setting, the
folders the settings name, and the text of ``.env.example``."""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, time
from pathlib import Path

from pydantic import SecretStr

from common.errors import SettingsError
from common.settings import ENV_PREFIX, NOT_SETTINGS, RENAMED, Settings
from common.settings.secrets import FILE_SUFFIX, secret_fields


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``KASSA_*`` name in ``environ`` that is no setting, naming the
    closest setting (a misspelt variable would otherwise be ignored in silence)."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    known |= {ENV_PREFIX + name.upper() + FILE_SUFFIX for name in secret_fields(Settings)}
    warnings = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known or name in NOT_SETTINGS:
            continue
        if name.lower() in RENAMED:
            new = RENAMED[name.lower()]
            used = "is ignored: " if new in environ else "is still read: "
            warnings.append(f"{name} is now called {new}; {name} {used}rename it")
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see .env.example for the settings"
        warnings.append(f"{name} is not a kassa setting and is ignored; {hint}")
    return warnings


def settings_variables(settings: Settings) -> dict[str, str]:
    """The ``KASSA_*`` variables from which :func:`~common.settings.load_settings` builds
    ``settings`` again, e.g. in a child process: unset fields are left out, and secrets are
    in plain text (an environment, never a message)."""
    variables = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        field = getattr(settings, name)
        text = field.get_secret_value() if isinstance(field, SecretStr) else str(value)
        variables[ENV_PREFIX + name.upper()] = text
    return variables


def check_folders(settings: Settings, names: Iterable[str]) -> None:
    """Create the folders of the settings ``names`` (e.g. ``"state_dir"``) if missing and
    check that this user can write in them; raise :class:`SettingsError` naming the first
    one that fails. An object-store ``KASSA_DATA_DIR`` is no folder here: the daily job
    reports its failures itself (:class:`storage.exceptions.DataStoreError`)."""
    for name in names:
        folder = getattr(settings, name)
        if not isinstance(folder, Path):
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            variable = ENV_PREFIX + name.upper()
            msg = (
                f"{variable}={str(folder)!r} is not a folder this user can write "
                f"({exc.strerror or exc}); create it for this user or point {variable} at one"
            )
            raise SettingsError(msg) from None


def env_example() -> str:
    """The text of ``.env.example``: every variable with its default and meaning."""
    lines = ["# kassa settings: every KASSA_* variable with its default value.", ""]
    for name, field in Settings.model_fields.items():
        default = field.default
        value = default.isoformat("minutes") if isinstance(default, time) else default
        if isinstance(default, datetime):
            value = default.isoformat().replace("+00:00", "Z")
        value = "" if value is None or isinstance(value, SecretStr) else value
        if field.description:
            lines.append(f"# {field.description}")
        lines.append(f"{ENV_PREFIX}{name.upper()}={value}")
    return "\n".join(lines) + "\n"
