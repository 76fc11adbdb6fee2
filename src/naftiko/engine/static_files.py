"""Safe access to files under a declared directory (MCP static resources, skill files).

A caller names a file by a relative path taken from a URI; the document author names the
directory. The caller must never reach outside it, so a relative path is accepted only
when every segment matches ``[A-Za-z0-9._-]+`` (no ``%``, no backslash, no empty segment),
is not ``.`` or ``..``, and the real path after symlink resolution stays inside the real
directory. Listing applies the same rules, so everything listed can also be read.

Protocol-neutral: adapters translate :class:`PathRejected` / :class:`FileMissing` into
their own errors.
"""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from naftiko.errors import CallerError
from naftiko.media_types import OCTET_STREAM, essence

SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")

# The reference engine's fallback map, checked before the platform's mimetypes table so
# that results do not depend on the host (``.md`` and ``.yaml`` vary between systems).
_EXTENSION_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".txt": "text/plain",
    ".xml": "application/xml",
    ".csv": "text/csv",
    ".html": "text/html",
}

_TEXT_SUBTYPES = ("json", "yaml", "xml", "javascript", "markdown", "csv", "x-www-form-urlencoded")


class StaticFileError(ValueError, CallerError):
    """Base of the errors below; the message is safe to show to a caller."""


class PathRejected(StaticFileError):
    """The relative path is malformed or escapes the directory."""


class FileMissing(StaticFileError):
    """The path is well-formed but names no regular file (missing, or a directory)."""


def _split(relative: str) -> list[str]:
    segments = relative.split("/")
    for segment in segments:
        if not SEGMENT.match(segment) or segment in (".", ".."):
            raise PathRejected(f"path traversal or invalid path segment in {relative!r}")
    return segments


def resolve_under(directory: str | os.PathLike[str], relative: str) -> Path:
    """The real path of the regular file ``relative`` under ``directory``.

    Raises :class:`PathRejected` for bad segments or a symlink leading outside, and
    :class:`FileMissing` when nothing (or a directory) is there.
    """
    root = Path(directory).resolve()
    candidate = root.joinpath(*_split(relative))
    try:
        real = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise FileMissing(f"no such file: {relative!r}") from None
    except (OSError, RuntimeError):  # symlink loop, permission on a parent
        raise PathRejected(f"cannot resolve {relative!r}") from None
    if not real.is_relative_to(root):
        raise PathRejected(f"path traversal detected in {relative!r}")
    if not real.is_file():
        raise FileMissing(f"{relative!r} is a directory, not a file")
    return real


def list_files(directory: str | os.PathLike[str]) -> list[str]:
    """Relative POSIX paths of every readable regular file under ``directory``, sorted.

    Files that :func:`resolve_under` would refuse (bad names, symlinks out) are left out,
    and symlinked directories are not followed, so listing cannot loop or leak.
    """
    root = Path(directory).resolve()
    if not root.is_dir():
        return []
    found: list[str] = []
    for current, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if SEGMENT.match(d)]
        rel_dir = Path(current).relative_to(root)
        for name in filenames:
            relative = (rel_dir / name).as_posix()
            try:
                resolve_under(root, relative)
            except StaticFileError:
                continue
            found.append(relative)
    return sorted(found)


def guess_media_type(path: str | os.PathLike[str]) -> str:
    """Media type by extension: the fixed map first, then the platform table."""
    suffix = Path(path).suffix.lower()
    if suffix in _EXTENSION_TYPES:
        return _EXTENSION_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(Path(path).name, strict=False)
    return guessed or OCTET_STREAM


def is_text_media_type(media_type: str | None) -> bool:
    """Whether content of this type is text (sent as text rather than base64)."""
    if not media_type:
        return False
    media = essence(media_type)
    if media.startswith("text/"):
        return True
    subtype = media.partition("/")[2]
    return any(subtype == t or subtype.endswith("+" + t) for t in _TEXT_SUBTYPES)


def resolve_file_location(location: str, base_dir: str | os.PathLike[str]) -> Path:
    """The path named by a document's ``location`` (``file://`` URI or plain path).

    Relative locations (``file://prompts/a.md``, ``file:./a.md``, ``prompts/a.md``) are
    taken from ``base_dir`` and must stay inside it; an absolute ``file:///...`` is the
    author's explicit choice and is used as given. Does not check that the file exists.
    """
    parts = urlsplit(location)
    if parts.scheme == "file":
        raw = unquote(parts.netloc + parts.path) if parts.netloc else unquote(parts.path)
        if parts.netloc in ("", "localhost") and parts.path.startswith("/"):
            return Path(unquote(parts.path))
    elif parts.scheme:
        raise PathRejected(f"not a file location: {location!r}")
    else:
        raw = location
    if Path(raw).is_absolute():
        return Path(raw)
    root = Path(base_dir).resolve()
    path = (root / raw).resolve()
    if not path.is_relative_to(root):
        raise PathRejected(f"location {location!r} escapes the capability directory")
    return path
