"""From paths on the command line to the list of adapters this process will serve.

Everything that can be decided before a socket is opened lives here: which files are
capabilities, loading and compiling them, applying ``--port``/``--host``/
``--control-port``, refusing port clashes and a second stdio adapter, and describing what
each adapter serves. Pure functions and data, so ``--check`` and the tests share it.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from naftiko.adapters.control.plan import CONTROL_NAMESPACE, ControlAdapterPlan
from naftiko.adapters.mcp.plan import DynamicResourcePlan, McpAdapterPlan
from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.adapters.skill.plan import SkillAdapterPlan
from naftiko.engine.plans import NotImplementedPlan
from naftiko.engine.types import AdapterPlan, Unit
from naftiko.errors import LoadTimeError
from naftiko.runtime.config import RuntimeConfig
from naftiko.spec.diagnostics import Diagnostic, LoadError
from naftiko.spec.loader import LoadedCapability, discover, is_capability_document, load_source
from naftiko.spec.source import SourceError, read_source

_LOOKS_LIKE_CAPABILITY = re.compile(r"^(naftiko|ikanos)\s*:", re.MULTILINE)
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})


class PlacementError(LoadTimeError):
    """The process cannot start; ``lines`` are printed as they are, exit code 2."""

    def __init__(self, lines: Sequence[str], code: int = 2) -> None:
        super().__init__("\n".join(lines))
        self.lines = tuple(lines)
        self.code = code


@dataclass
class PlacedDocument:
    """One loaded and compiled document; replaced whole on reload."""

    path: Path
    loaded: LoadedCapability
    compiled: Any  # naftiko.compile.capability.CompiledCapability
    # Gateway mode only: why the document is served degraded (a bind variable that is not
    # set); its units then answer 503 naming it. ``None``: it serves normally.
    degraded: str | None = None
    # ``--reload`` in gateway mode: why the file on disk no longer serves (it stopped
    # loading, or its namespace clashes); this, the previous version, keeps serving.
    stale: str | None = None
    # The consumed namespaces, kept when the model is released (``release_model``).
    consumed_namespaces: tuple[str, ...] | None = None

    @property
    def problems(self) -> str | None:
        """What /status and the catalogue show as the reason of a degraded document."""
        return "; ".join(r for r in (self.degraded, self.stale) if r) or None

    @property
    def label(self) -> str:
        info = self.loaded.document.info
        return (info.label if info and info.label else None) or self.path.stem

    @property
    def spec_version(self) -> str | None:
        return self.loaded.document.naftiko

    def consumed(self) -> tuple[str, ...]:
        """The namespaces of the consumed APIs."""
        if self.consumed_namespaces is not None:
            return self.consumed_namespaces
        return tuple(c.namespace for c in self.loaded.document.consumed())

    def release_model(self) -> None:
        """Keep only what serving reads of the document model: its ``info``, its version
        and the namespaces it consumes.

        Once compiled, nothing reads the rest: the compiled units hold what requests
        need. A document's pydantic tree is the largest part of what it keeps (over a
        folder of 1,000, most of the idle memory), and released right after each
        compile, the next document's load reuses its memory.
        """
        from naftiko.spec.models import Document

        document = self.loaded.document
        self.consumed_namespaces = tuple(c.namespace for c in document.consumed())
        slim = Document.model_construct(naftiko=document.naftiko, info=document.info)
        self.loaded = replace(self.loaded, document=slim)
        if getattr(self.compiled, "loaded", None) is not None:
            self.compiled = replace(self.compiled, loaded=self.loaded)

    @property
    def version(self) -> str | None:
        """The capability's own ``info.version`` (Ikanos beta4), when declared."""
        info = self.loaded.document.info
        return str(info.version) if info and info.version is not None else None

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        """The loader's and the compiler's (units that answer 501 and why)."""
        compiled = tuple(getattr(self.compiled, "warnings", ()))
        return tuple(d for d in (*self.loaded.diagnostics, *compiled) if d.severity == "warning")


@dataclass
class Slot:
    """One adapter to serve: its plan after overrides and where it binds."""

    plan: AdapterPlan
    capability: PlacedDocument | None  # None for the control adapter added by --control-port
    host: str
    declared_port: int | None  # the document's port, to tell a reload that ports moved
    mount: str = ""  # gateway mode: the path prefix it is served under (``/PREFIX``)

    @property
    def type(self) -> str:
        return self.plan.type

    @property
    def namespace(self) -> str:
        return self.plan.namespace or CONTROL_NAMESPACE

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.namespace)

    @property
    def is_stdio(self) -> bool:
        return isinstance(self.plan, McpAdapterPlan) and self.plan.transport == "stdio"

    @property
    def origin(self) -> str:
        if self.capability:
            return str(self.capability.path)
        return "--gateway" if self.plan.type == "gateway" else "--control-port"

    def name(self) -> str:
        return f"{self.type} {self.namespace} ({self.origin})"


# --------------------------------------------------------------------------- loading


def capability_files(paths: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Files to load: every file named, plus capability documents found in directories.

    A directory may also hold shared ``consumes`` files and unrelated YAML; those are
    skipped (and listed in the second return value), not reported as broken.
    """
    files: list[Path] = []
    skipped: list[str] = []
    named = {Path(p) for p in paths if not Path(p).is_dir()}
    seen: set[Path] = set()
    for path in discover(paths):
        resolved = path.resolve()
        if resolved in seen:  # the same file named twice, or also under a directory
            continue
        seen.add(resolved)
        if path in named:
            files.append(path)
            continue
        try:
            text = path.read_text(encoding="utf-8-sig", errors="replace")
        except OSError:
            skipped.append(str(path))
            continue
        if _LOOKS_LIKE_CAPABILITY.search(text):
            files.append(path)
        else:
            skipped.append(str(path))
    return files, skipped


def load_one(path: Path, config: RuntimeConfig, *, explicit: bool = True) -> PlacedDocument | None:
    """Load and compile one file; ``None`` for a directory member that is a shared file.

    Raises :class:`LoadError` (diagnostics) when the document cannot run. In gateway
    mode a document whose only errors are bind variables that are not set loads anyway,
    marked ``degraded`` with the reason: one missing secret must not keep a whole folder
    from being served. Outside it, such a document stops the start, as before.
    """
    from naftiko.adapters.exposes import compile_capability

    source = _read(path)
    if not explicit and not is_capability_document(source.data):
        return None
    degraded = None
    if config.gateway_port is None:
        loaded = load_source(path, source)
    else:
        # One load that lets unset binds through and lists them: most published
        # documents name a secret, and loading each twice was a third of a folder's start.
        try:
            loaded = load_source(path, source, require_binds=False)
        except LoadError:
            # Report what a load requiring the binds reports (every error, unset binds
            # among them). The loader changed the parsed data in place: read it again;
            # this document stops the start anyway.
            loaded = load_source(path, _read(path))
        degraded = unset_binds(loaded.unset_binds)
    compiled = compile_capability(loaded, config.engine_settings())
    loaded.source_map.release(source.text)
    placed = PlacedDocument(path=path, loaded=loaded, compiled=compiled, degraded=degraded)
    if config.gateway_port is not None:
        placed.release_model()
    return placed


def _read(path: Path) -> Any:
    try:
        return read_source(path, str(path))
    except SourceError as exc:
        raise LoadError(
            [Diagnostic("error", str(path), exc.message, line=exc.line, column=exc.column)]
        ) from None


_UNSET_BIND = re.compile(
    r"^bind variable '[^']*' unresolved: (.*); the document uses it, so it must"
)


def unset_binds(diagnostics: Iterable[Diagnostic]) -> str | None:
    """The reason to serve degraded when every error is a used bind that is not set, else
    ``None``. It names environment variables and bind files, never a value."""
    reasons: list[str] = []
    for diagnostic in diagnostics:
        if diagnostic.severity != "error":
            continue
        found = _UNSET_BIND.match(diagnostic.message)
        if found is None:
            return None
        if found.group(1) not in reasons:
            reasons.append(found.group(1))
    return "; ".join(reasons) or None


def load_all(config: RuntimeConfig) -> tuple[list[PlacedDocument], list[str]]:
    """Every capability given; raises :class:`PlacementError` with all diagnostics of all files."""
    if not config.paths:
        raise PlacementError(["naftiko-run: no capability file or directory given"])
    missing = [p for p in config.paths if not Path(p).exists()]
    if missing:
        raise PlacementError([f"{p}: error: file not found" for p in missing])
    files, skipped = capability_files(config.paths)
    explicit = {Path(p) for p in config.paths}
    capabilities: list[PlacedDocument] = []
    errors: list[str] = []
    for path in files:
        try:
            capability = load_one(path, config, explicit=path in explicit)
        except LoadError as exc:
            errors.extend(d.format() for d in exc.diagnostics)
            continue
        except Exception as exc:  # a defect of ours: say where, without a traceback
            raise PlacementError(
                [f"{path}: error: internal error while loading: {type(exc).__name__}: {exc}"],
                code=1,
            ) from exc
        if capability is None:
            skipped.append(str(path))
        else:
            capabilities.append(capability)
    if errors:
        raise PlacementError(errors)
    if not capabilities:
        raise PlacementError([f"naftiko-run: no capability document in {', '.join(config.paths)}"])
    return capabilities, skipped


# --------------------------------------------------------------------------- slots


def _override(plan: AdapterPlan, config: RuntimeConfig) -> AdapterPlan:
    namespace = plan.namespace or CONTROL_NAMESPACE
    if namespace in config.ports:
        return replace(plan, port=config.ports[namespace])
    if isinstance(plan, ControlAdapterPlan) and config.control_port is not None:
        return replace(plan, port=config.control_port)
    return plan


def make_slot(plan: AdapterPlan, capability: PlacedDocument | None, config: RuntimeConfig) -> Slot:
    return Slot(
        plan=_override(plan, config),
        capability=capability,
        host=config.bind_host(plan.address),
        declared_port=plan.port,
    )


def place_slots(
    capabilities: Iterable[PlacedDocument], config: RuntimeConfig
) -> tuple[list[Slot], list[str]]:
    """The adapters to serve, after overrides; raises :class:`PlacementError` on conflicts.

    The second value holds warnings (none today: an override naming no namespace is an
    error, :func:`override_typos`).
    """
    slots = [
        make_slot(plan, capability, config)
        for capability in capabilities
        for plan in capability.compiled.adapters
    ]
    if config.control_port is not None and not any(
        isinstance(s.plan, ControlAdapterPlan) for s in slots
    ):
        plan = ControlAdapterPlan(
            type="control",
            namespace=CONTROL_NAMESPACE,
            address=None,
            port=config.control_port,
            description="added by --control-port",
            authentication=None,
        )
        slots.append(make_slot(plan, None, config))
    if config.gateway_port is not None:
        return gateway_slots(slots, config)
    all_slots = slots
    slots, notes = stdio_selection(slots, config)
    errors = [
        *port_errors(slots),
        *port_clashes(slots),
        *stdio_conflicts(slots),
        *override_typos(all_slots, config),
    ]
    if errors:
        raise PlacementError(errors)
    return slots, notes


def gateway_slots(slots: list[Slot], config: RuntimeConfig) -> tuple[list[Slot], list[str]]:
    """``--gateway``: every adapter, ports ignored; stdio adapters are served over HTTP
    there too, and documents' control adapters give way to the gateway's own."""
    errors = []
    if config.stdio is not None:
        errors.append("naftiko-run: --stdio and --gateway cannot be combined")
    if config.control_port is not None:
        errors.append(
            "naftiko-run: --control-port and --gateway cannot be combined: the gateway "
            "serves /health, /metrics and /status on its own port"
        )
    errors += [line for line in override_typos(slots, config) if "--base-uri" in line]
    if errors:
        raise PlacementError(errors)
    notes = []
    if config.ports:
        notes.append("--port/NAFTIKO_PORTS are ignored with --gateway (one port for all)")
    kept = []
    for slot in slots:
        if isinstance(slot.plan, ControlAdapterPlan):
            notes.append(
                f"{slot.name()}: the gateway's /health, /metrics and /status serve instead"
            )
            continue
        kept.append(slot)
    return place_in_gateway(kept, config, assign_prefixes(kept, dict(config.prefixes))), notes


def gateway_member_slots(capability: PlacedDocument, config: RuntimeConfig) -> list[Slot]:
    """The slots of one document in gateway mode (a reload adds them one file at a time);
    not yet placed: see :func:`place_in_gateway`."""
    slots = [make_slot(plan, capability, config) for plan in capability.compiled.adapters]
    return [s for s in slots if not isinstance(s.plan, ControlAdapterPlan)]


def place_in_gateway(
    slots: Sequence[Slot], config: RuntimeConfig, prefixes: Sequence[str]
) -> list[Slot]:
    """Slots as the gateway serves them: on its port and host, under ``/PREFIX``; stdio
    MCP adapters are served over HTTP there too."""
    host = config.bind_host(None)
    placed = []
    for slot, prefix in zip(slots, prefixes, strict=True):
        plan = replace(slot.plan, transport="http") if slot.is_stdio else slot.plan
        placed.append(
            replace(
                slot, plan=replace(plan, port=config.gateway_port), host=host, mount=f"/{prefix}"
            )
        )
    return placed


# First path segments the gateway answers itself; a namespace spelled so needs --prefix.
RESERVED_PREFIXES = frozenset({"mcp", "health", "metrics", "status", "_naftiko"})
# Unreserved URL characters only: the prefix is the same encoded and decoded.
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$")


def _prefix_keys(slot: Slot) -> Iterable[str]:
    if slot.capability is not None:
        path = slot.capability.path
        yield f"{path}:{slot.namespace}"
        yield f"{path.resolve()}:{slot.namespace}"
    yield slot.namespace


def _file_key(key: str) -> tuple[Path, str] | None:
    file, sep, namespace = key.rpartition(":")
    return (Path(file).resolve(), namespace) if sep and file else None


def assign_prefixes(
    slots: Sequence[Slot], prefixes: dict[str, str], *, every_override: bool = True
) -> list[str]:
    """The prefix of each slot, in order; raises :class:`PlacementError` (exit 2) on a clash,
    a reserved or unusable prefix, or (``every_override``: the slots are all there are)
    a ``--prefix`` that names no adapter."""
    chosen: list[str] = []
    used: set[str] = set()
    for slot in slots:
        prefix = slot.namespace
        key = next((k for k in _prefix_keys(slot) if k in prefixes), None) if prefixes else None
        if key is None and prefixes and slot.capability is not None:
            mine = (slot.capability.path.resolve(), slot.namespace)
            key = next((k for k in prefixes if _file_key(k) == mine), None)
        if key is not None:
            prefix = prefixes[key]
            used.add(key)
        chosen.append(prefix)
    lines = [
        f"naftiko-run: --prefix {key}: no adapter has this namespace (or FILE:NAMESPACE)"
        for key in prefixes
        if every_override and key not in used
    ]
    claims: dict[str, list[Slot]] = {}
    for slot, prefix in zip(slots, chosen, strict=True):
        claims.setdefault(prefix, []).append(slot)
        if prefix in RESERVED_PREFIXES or not PREFIX_PATTERN.match(prefix) or prefix in (".", ".."):
            why = (
                "is reserved by the gateway"
                if prefix in RESERVED_PREFIXES
                else "is not usable in a URL path (letters, digits, - _ . ~ only)"
            )
            lines.append(
                f"naftiko-run: {slot.name()}: prefix /{prefix} {why}; serve it under "
                f"another with --prefix {slot.origin}:{slot.namespace}=OTHER"
            )
    for prefix, claimants in claims.items():
        if len(claimants) > 1:
            last = claimants[-1]
            lines.append(
                f"naftiko-run: prefix /{prefix} is claimed by "
                f"{' and '.join(s.name() for s in claimants)}; rename the namespace in one "
                f"document, or pass --prefix {last.origin}:{last.namespace}=OTHER"
            )
    if lines:
        raise PlacementError(lines)
    return chosen


def stdio_selection(slots: list[Slot], config: RuntimeConfig) -> tuple[list[Slot], list[str]]:
    """Apply ``--stdio``; with a stdio adapter, keep only it and what ``--port`` names.

    An MCP client launches the process for stdin/stdout: binding the document's other
    ports too would make that launch fail whenever one is taken. Raises
    :class:`PlacementError` when ``--stdio`` names no MCP adapter.
    """
    if config.stdio is not None:
        chosen = _stdio_choice(slots, config.stdio)
        slots = [
            replace(s, plan=replace(s.plan, transport="stdio")) if s is chosen else s
            for s in slots
            if s is chosen or not s.is_stdio
        ]
    if not any(s.is_stdio for s in slots):
        return slots, []
    kept, notes = [], []
    for slot in slots:
        asked = slot.namespace in config.ports or (
            isinstance(slot.plan, ControlAdapterPlan) and config.control_port is not None
        )
        if slot.is_stdio or asked:
            kept.append(slot)
        else:
            notes.append(
                f"{slot.name()}: not served beside stdio; pass --port {slot.namespace}=PORT "
                f"to serve it too"
            )
    return kept, notes


def _stdio_choice(slots: Sequence[Slot], namespace: str) -> Slot:
    mcp = [s for s in slots if isinstance(s.plan, McpAdapterPlan)]
    if namespace:
        found = [s for s in slots if s.namespace == namespace]
        if found and found[0] in mcp:
            return found[0]
        names = [s.namespace for s in mcp]
        if found:
            line = f"naftiko-run: --stdio {namespace}: not an MCP adapter ({found[0].type})."
        else:
            line = f"naftiko-run: --stdio {namespace}: no MCP adapter has this namespace"
            close = difflib.get_close_matches(namespace, names, n=1, cutoff=0.6)
            line += f"; did you mean '{close[0]}'?" if close else "."
        raise PlacementError([f"{line} MCP adapters: {', '.join(names) or 'none'}"])
    if len(mcp) != 1:
        names = ", ".join(s.namespace for s in mcp) or "none"
        line = f"--stdio needs a namespace: there is not exactly one MCP adapter ({names})"
        raise PlacementError([f"naftiko-run: {line}; pass --stdio NAMESPACE"])
    return mcp[0]


def override_typos(slots: Sequence[Slot], config: RuntimeConfig) -> list[str]:
    """One line per ``--port``/``--base-uri`` (or environment form) naming no namespace.

    A typo must stop the process: serving anyway would call the document's (usually
    production) upstream, or bind the document's port, while the operator thinks not.
    """
    exposed = sorted({s.namespace for s in slots})
    consumed = sorted(
        {c for s in slots if s.capability is not None for c in s.capability.consumed()}
    )
    lines = [
        _unknown("--port", "NAFTIKO_PORTS", "exposed adapter", ns, exposed)
        for ns in config.ports
        if ns not in exposed
    ]
    lines += [
        _unknown("--base-uri", "NAFTIKO_BASE_URIS", "consumed API", ns, consumed)
        for ns in config.base_uris
        if ns not in consumed
    ]
    return lines


def _unknown(flag: str, variable: str, what: str, namespace: str, known: list[str]) -> str:
    line = f"naftiko-run: {flag} {namespace}: no {what} has this namespace ({flag} or {variable})"
    close = difflib.get_close_matches(namespace, known, n=1, cutoff=0.6)
    line += f"; did you mean '{close[0]}'?" if close else "."
    return f"{line} Known: {', '.join(known) or 'none'}"


def port_errors(slots: Iterable[Slot]) -> list[str]:
    return [
        f"naftiko-run: {s.name()} declares no port; add one or pass --port {s.namespace}=PORT"
        for s in slots
        if not s.is_stdio and s.plan.port is None
    ]


def _host_key(host: str) -> str:
    host = host.strip("[]").lower()
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def hosts_overlap(a: str, b: str) -> bool:
    """Two binds collide when they share a port and either listens everywhere."""
    ka, kb = _host_key(a), _host_key(b)
    return ka == kb or ka in WILDCARD_HOSTS or kb in WILDCARD_HOSTS


def port_clashes(slots: Sequence[Slot]) -> list[str]:
    """One line per port that two or more adapters would bind (0 never clashes), naming
    every claimant; a folder of published documents (which all declare the same two
    ports) gets two lines, not one per pair."""
    by_port: dict[int, list[Slot]] = {}
    for slot in slots:
        if not slot.is_stdio and slot.plan.port:
            by_port.setdefault(int(slot.plan.port), []).append(slot)
    lines = []
    for port, claimants in by_port.items():
        clashing = _clashing(claimants)
        if clashing:
            lines.append(
                f"naftiko-run: port {port} clash: {len(clashing)} adapters claim it: "
                f"{', '.join(s.name() for s in clashing)}; move them with --port "
                f"NAMESPACE=PORT, or serve them all on one port with --gateway PORT"
            )
    return lines


def _clashing(claimants: Sequence[Slot]) -> list[Slot]:
    """The claimants of one port that overlap another one's host, in declaration order.

    Grouped by host first, so the usual case (every bind on the same host or on the
    wildcard) stays linear in the number of claimants.
    """
    if len(claimants) < 2:
        return []
    hosts: dict[str, list[Slot]] = {}
    for slot in claimants:
        hosts.setdefault(_host_key(slot.host), []).append(slot)
    if len(hosts) == 1 or any(host in WILDCARD_HOSTS for host in hosts):
        return list(claimants)  # one host, or a wildcard that overlaps every other
    return [s for s in claimants if len(hosts[_host_key(s.host)]) > 1]


def stdio_conflicts(slots: Sequence[Slot]) -> list[str]:
    stdio = [s for s in slots if s.is_stdio]
    if len(stdio) <= 1:
        return []
    names = " and ".join(s.name() for s in stdio)
    return [f"naftiko-run: only one stdio MCP adapter can own stdin/stdout, found {names}"]


# --------------------------------------------------------------------------- description


def url_of(host: str, port: int | None, path: str = "") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


ANSWERS_501 = " (answers 501)"


def _item(label: str, unit: Unit) -> str:
    """A served item, marked when its unit can only answer 501 (named by a load warning)."""
    return label + ANSWERS_501 if isinstance(unit.plan, NotImplementedPlan) else label


def serves(plan: AdapterPlan) -> list[str]:
    """What an adapter exposes, one short item each, for the start-up summary."""
    if isinstance(plan, RestAdapterPlan):
        items = []
        for route in plan.routes:
            items += [_item(f"{method} {route.path}", u) for method, u in route.operations.items()]
            if route.forward is not None:
                items.append(f"* {route.path} -> {route.forward.target_namespace}")
        return items
    if isinstance(plan, McpAdapterPlan):
        items = [_item(f"tool {tool.name}", tool) for tool in plan.tools]
        items += [
            _item(f"resource {r.uri}", r.unit)
            if isinstance(r, DynamicResourcePlan)
            else f"resource {r.uri}"
            for r in plan.resources
        ]
        items += [f"prompt {prompt.name}" for prompt in plan.prompts]
        return items
    if isinstance(plan, SkillAdapterPlan):
        return [f"skill {skill.name}" for skill in plan.skills]
    if isinstance(plan, ControlAdapterPlan):
        from naftiko.adapters.control.app import control_features

        features = control_features(plan)
        paths = {
            "health": ["/health/live", "/health/ready"],
            "metrics": ["/metrics"],
            "info": ["/status"],
        }
        return [p for name, on in features.items() if on for p in paths[name]]
    return []


def served_count(items: Sequence[str]) -> str:
    """``3 served``, or ``1 served, 2 answer 501`` when stubs are among them."""
    stubs = sum(item.endswith(ANSWERS_501) for item in items)
    counted = f"{len(items) - stubs} served"
    return f"{counted}, {stubs} answer 501" if stubs else counted


def adapter_path(plan: AdapterPlan) -> str:
    return "/mcp" if isinstance(plan, McpAdapterPlan) else ""


@dataclass
class Summary:
    """``--check`` output and the start-up banner, from the same data."""

    capabilities: list[PlacedDocument]
    slots: list[Slot]
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self, ports: dict[tuple[str, str], int | None] | None = None) -> list[str]:
        out = []
        for capability in self.capabilities:
            out.append(
                f"capability {capability.label!r} ({capability.path}, "
                f"naftiko {capability.spec_version or '?'})"
            )
            if capability.degraded:
                out.append(f"  degraded (its units answer 503): {capability.degraded}")
            out += [f"  {d.format()}" for d in capability.warnings]
        for slot in self.slots:
            if slot.is_stdio:
                where = "stdio"
            else:
                port = (ports or {}).get(slot.key, slot.plan.port)
                where = url_of(slot.host, port, slot.mount + adapter_path(slot.plan))
            items = serves(slot.plan)
            out.append(f"  {slot.type} {slot.namespace} {where}: {served_count(items)}")
            out += [f"    {item}" for item in items]
        out += [f"skipped (not a capability): {path}" for path in self.skipped]
        out += [f"warning: {w}" for w in self.warnings]
        return out
