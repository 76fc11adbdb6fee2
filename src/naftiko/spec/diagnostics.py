"""Problems found while loading a document, each tied to a file, a line and a path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from naftiko.errors import LoadTimeError

Severity = Literal["error", "warning"]

# A key or value quoted from the document may hold line breaks or other control
# characters; a diagnostic is one line, so they are written as escapes.
_CONTROL = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F)}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem. ``path`` is the location inside the document, for example
    ``capability.exposes[1].tools[0].call``; ``line``/``column`` are 1-based."""

    severity: Severity
    file: str
    message: str
    path: str = ""
    line: int | None = None
    column: int | None = None

    def format(self) -> str:
        """``FILE:LINE:COL: severity: message (at path)`` — one line, no secret."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        at = f" (at {self.path})" if self.path else ""
        return f"{where}: {self.severity}: {self.message}{at}".translate(_CONTROL)


class LoadError(LoadTimeError):
    """A document cannot run. Carries every diagnostic found, errors and warnings."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        super().__init__("; ".join(d.format() for d in errors) or "document failed to load")
