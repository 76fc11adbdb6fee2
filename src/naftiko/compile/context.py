"""What every compile stage shares: the document's binds and its diagnostics.

The compiler reports every document error it finds instead of stopping at the first, so
the stages (consumed APIs, units, adapters) append to one :class:`CompileContext` and
``compile_capability`` raises a single :class:`~naftiko.spec.diagnostics.LoadError` at
the end. Positions come from the loader's source map.

One rule for problems confined to some units (an unsupported authentication type, an
unknown step type, an unreadable ``outputRawFormat``...): :meth:`CompileContext.confined`
makes them a warning in lenient mode, saying that those units answer 501, and an error
in strict mode. The stage that reports one also builds a plan that answers 501.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from naftiko.engine.mapping import MappingError, OutputMapper, compile_outputs
from naftiko.spec.diagnostics import Diagnostic
from naftiko.spec.models import OutputParameter
from naftiko.templating import (
    MISSING,
    Scope,
    Template,
    TemplateError,
    ValueExpr,
    compile_template,
    compile_value,
)
from naftiko.upstream.outbound_auth import OAuth2TokenCache
from naftiko.upstream.settings import UpstreamSettings

__all__ = ["CompileContext", "PathT"]

PathT = tuple[str | int, ...]
"""A position in the document, e.g. ``("capability", "exposes", 0, "tools", 2)``."""


class CompileContext:
    """One capability's compilation state: binds, base directory, errors and warnings."""

    def __init__(self, loaded: Any, settings: UpstreamSettings, *, strict: bool = False) -> None:
        self.loaded = loaded
        self.settings = settings
        self.strict = strict
        self.source_map = getattr(loaded, "source_map", None)
        self.file = str(getattr(loaded, "path", "") or "")
        self.base_dir = str(getattr(loaded, "base_dir", ".") or ".")
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        bindings = getattr(loaded, "bindings", None)
        self.binds: Mapping[str, str] = bindings.as_scope() if bindings is not None else {}
        self.bind_namespaces: Mapping[str, Mapping[str, str]] = (
            bindings.namespaced() if bindings is not None else {}
        )
        self.bind_scope = Scope(binds=self.binds, bind_namespaces=self.bind_namespaces)
        self.token_cache = OAuth2TokenCache()

    def is_bound(self, reference: str) -> bool:
        """Whether a bind variable answers ``reference`` (then no caller input does)."""
        return self.bind_scope.lookup(reference) is not MISSING

    def unit_scope(self, input_namespaces: Collection[str]) -> Scope:
        """The load-time scope of a unit: binds, and which namespaces mean "input"."""
        return Scope(
            binds=self.binds,
            bind_namespaces=self.bind_namespaces,
            input_namespaces=frozenset(input_namespaces),
        )

    # ------------------------------------------------------------------ diagnostics

    def _diag(self, path: PathT, message: str, severity: str) -> Diagnostic:
        if self.source_map is not None:
            return self.source_map.diagnostic_at(path, severity, message)
        return Diagnostic(severity=severity, file=self.file, message=message)  # type: ignore[arg-type]

    def error(self, path: PathT, message: str) -> None:
        self.errors.append(self._diag(path, message, "error"))

    def warning(self, path: PathT, message: str) -> None:
        self.warnings.append(self._diag(path, message, "warning"))

    def confined(self, path: PathT, message: str) -> None:
        """A problem that only some units have (``message`` says which answer 501):
        a warning when lenient, so the rest of the document serves; an error when strict."""
        if self.strict:
            self.error(path, message)
        else:
            self.warning(path, message)

    # ------------------------------------------------------------------ compile or report

    def template(self, text: str, path: PathT) -> Template | None:
        try:
            return compile_template(text)
        except TemplateError as exc:
            self.error(path, str(exc))
            return None

    def value(self, raw: Any, namespaces: Iterable[str], path: PathT) -> ValueExpr | None:
        try:
            return compile_value(raw, namespaces)
        except TemplateError as exc:
            self.error(path, str(exc))
            return None

    def outputs(self, params: Sequence[OutputParameter], path: PathT) -> OutputMapper | None:
        if not params:
            return None
        try:
            return compile_outputs(params)
        except (MappingError, TemplateError) as exc:
            self.error(path, str(exc))
            return None
