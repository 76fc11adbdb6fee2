"""The runtime settings file (``naftiko-run --settings FILE``): TOML or YAML, read once at start.

It holds what operators tune without touching a capability document, one top-level table
per concern; each concern's module validates its own table. Unknown tables are refused so
a typo does not silently leave a default in place.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from naftiko.errors import LoadTimeError

# ``upstream``: resilience per consumed namespace; ``rate_limits``: caller limits per adapter.
SECTIONS: tuple[str, ...] = ("upstream", "rate_limits")


class SettingsFileError(ValueError, LoadTimeError):
    """A settings file that cannot be used; reported as one line per problem, exit 2."""


def load_settings_file(path: str | Path) -> Mapping[str, Any]:
    """The file's top-level tables, by name (``.toml`` as TOML, anything else as YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsFileError(f"{path}: cannot read the settings file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsFileError(f"{path}: not valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise SettingsFileError(f"{path}{where}: not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsFileError(f"{path}: expected tables ({', '.join(SECTIONS)}) at the top")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise SettingsFileError(
            f"{path}: unknown table(s) {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(SECTIONS)}"
        )
    for name, table in data.items():
        if not isinstance(table, dict):
            raise SettingsFileError(f"{path}: {name!r} must be a table of settings")
    return data
