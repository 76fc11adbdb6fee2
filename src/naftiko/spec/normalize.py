"""Lenient rewrites of deviations seen in published documents, each one reported.

Runs on the plain parsed data, before the models see it, and mutates it in place (the
data is fresh from the parser). Every rewrite calls ``report(path, message)`` so that
``naftiko validate`` can list what was bent; nothing here ever fails.

Ikanos documents (``ikanos:`` 1.0.0-alpha3 .. beta5) are brought to the same shape, the
one the models and the compiler read, so no later layer cares which version a document
was written in: named maps become lists with ``name``, ``display`` becomes ``label``,
``flows`` become ``functions``, ``target`` becomes ``targetName``, an array's ``items``
map of named properties becomes an object schema, and file-scope ``consumes``/``exposes``/
``aggregates`` join the capability's. For an Ikanos document these are its format, so
they are not reported; in a ``naftiko:`` document they are deviations, and are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from naftiko.spec.source import PathT

Report = Callable[[PathT, str], None]

CURRENT_VERSION = "1.0.0-alpha2"
NAFTIKO_VERSIONS = ("1.0.0-alpha1", "1.0.0-alpha2")
IKANOS_VERSIONS = (
    "1.0.0-alpha3",
    "1.0.0-alpha4",
    "1.0.0-beta1",
    "1.0.0-beta2",
    "1.0.0-beta3",
    "1.0.0-beta4",
    "1.0.0-beta5",
)
LATEST_IKANOS = IKANOS_VERSIONS[-1]
# ``naftiko:`` values seen in published documents that are no release of that root key
ACCEPTED_VERSIONS = frozenset({"1.0.0-alpha3", "0.5", "0.5.0"})

# Keys whose value is a list of objects with ``name``; Ikanos writes them as maps.
NAMED_LISTS = frozenset(
    {
        "resources",
        "operations",
        "tools",
        "prompts",
        "arguments",
        "skills",
        "steps",
        "inputParameters",
        "outputParameters",
        "functions",
        "flows",
    }
)
# Values that are payloads, not spec objects: never rewritten.
OPAQUE = frozenset(
    {"data", "value", "const", "default", "example", "examples", "enum", "metadata", "keys"}
)
_BODY_ALIASES = {"form": "formUrlEncoded", "multipart": "multipartForm"}
_API_KEY_TYPES = frozenset({"apikey", "apiKey", "api-key", "api_key"})


def version_of(data: dict[str, Any]) -> Any:
    """The raw version value (``naftiko`` or, for Ikanos documents, ``ikanos``)."""
    return data["naftiko"] if "naftiko" in data else data.get("ikanos")


def is_ikanos(data: Any) -> bool:
    """Whether a (raw) document root is written in the Ikanos format (``ikanos:`` key)."""
    return isinstance(data, dict) and "ikanos" in data and "naftiko" not in data


def normalize(data: dict[str, Any], report: Report) -> dict[str, Any]:
    """Rewrite ``data`` (a document root) into the model's shape; returns it."""
    ikanos = is_ikanos(data)
    _root(data, report, ikanos)
    once: set[str] = set()

    def report_once(kind: str, path: PathT, message: str) -> None:
        if ikanos and kind in _IKANOS_FORMAT:
            return  # the document's own format, not a deviation
        if kind not in once:
            once.add(kind)
            report(path, message)

    _walk(data, (), report, report_once)
    return data


# Rewrites that are the Ikanos format itself (reported in ``naftiko:`` documents only).
_IKANOS_FORMAT = frozenset({"named-map", "display", "flows", "target", "items-map", "root"})


def _root(data: dict[str, Any], report: Report, ikanos: bool) -> None:
    if ikanos:
        data["naftiko"] = data.pop("ikanos")
        _file_scope(data)
    version = data.get("naftiko")
    if isinstance(version, dict):
        inner = version.get("version")
        data["naftiko"] = inner if isinstance(inner, str) else None
        report(
            ("naftiko",),
            "'naftiko' should be a version string such as '1.0.0-alpha2', not a mapping"
            + (f"; read as {inner!r}" if isinstance(inner, str) else ""),
        )
    elif isinstance(version, int | float) and not isinstance(version, bool):
        data["naftiko"] = str(version)
    elif version is not None and not isinstance(version, str):
        data["naftiko"] = None
        report(("naftiko",), "'naftiko' should be a version string such as '1.0.0-alpha2'")
    info = data.get("info")
    if isinstance(info, dict) and "title" in info and "label" not in info:
        info["label"] = info.pop("title")
        report(("info", "title"), "'info.title' is not alpha2: read as 'info.label'")
    for owner, path in ((data, ()), (data.get("capability"), ("capability",))):
        if isinstance(owner, dict) and "binds" in owner:
            owner["binds"] = _binds(owner["binds"], (*path, "binds"), report)


def _file_scope(data: dict[str, Any]) -> None:
    """An Ikanos capability's file-scope ``consumes``/``exposes``/``aggregates`` join its
    ``capability`` (after its own entries, so indices of the capability's stay put); a
    fragment file (no ``capability``) keeps them at the root for importers."""
    capability = data.get("capability")
    if not isinstance(capability, dict):
        return
    for key in ("consumes", "exposes", "aggregates"):
        extra = data.get(key)
        if isinstance(extra, list) and extra:
            own = capability.get(key)
            capability[key] = [*(own if isinstance(own, list) else []), *extra]
            del data[key]


def _binds(value: Any, path: PathT, report: Report) -> Any:
    """Binds written as a map or as bare variable names become a list of binds."""
    if value is None:
        return []
    if isinstance(value, dict):
        if "keys" in value or "location" in value or "namespace" in value:
            report(path, "'binds' should be a list of binds: read as a list of one")
            value = [value]
        else:  # Ikanos named map {ns: {...}}
            report(path, "'binds' written as a map of namespaces: read as a list")
            value = [
                {"namespace": ns, **b} if isinstance(b, dict) else {"namespace": ns}
                for ns, b in value.items()
            ]
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for i, bind in enumerate(value):
        if isinstance(bind, str):
            report((*path, i), f"bind {bind!r} is a bare name: read as keys {{{bind}: {bind}}}")
            bind = {"keys": {bind: bind}}
        elif isinstance(bind, dict):
            keys = bind.get("keys")
            if isinstance(keys, list):
                report((*path, i, "keys"), "'keys' should map VAR to a provider key")
                bind["keys"] = {str(k): str(k) for k in keys if isinstance(k, str | int)}
            elif isinstance(keys, dict):
                bind["keys"] = {str(k): _scalar_text(v, k) for k, v in keys.items()}
            elif keys is None and "keys" in bind:
                bind["keys"] = {}
        out.append(bind)
    return out


def _scalar_text(value: Any, default: Any) -> str:
    if value is None:
        return str(default)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _walk(
    root: Any,
    root_path: PathT,
    report: Report,
    report_once: Callable[[str, PathT, str], None],
) -> None:
    """Rewrite every object under ``root``, parents first, in document order.

    Iterative because libyaml allows 1000 levels of nesting, more than Python's recursion
    limit; a node shared through a YAML alias is rewritten (and reported) once.
    """
    stack: list[tuple[bool, Any, PathT]] = [(False, root, root_path)]  # (is 'with', node, path)
    seen: set[int] = set()
    while stack:
        is_with, node, path = stack.pop()
        if is_with:
            _string_keys(node, path, report)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, list):
            items = [
                (False, v, (*path, i)) for i, v in enumerate(node) if isinstance(v, dict | list)
            ]
            stack.extend(reversed(items))
            continue
        if not isinstance(node, dict):
            continue
        _object(node, path, report, report_once)
        children: list[tuple[bool, Any, PathT]] = []
        for key, value in node.items():
            if key == "with" and isinstance(value, dict):
                children.append((True, value, (*path, key)))
            elif isinstance(value, dict | list) and key not in OPAQUE:
                children.append((False, value, (*path, key)))
        stack.extend(reversed(children))


def _object(
    node: dict[str, Any],
    path: PathT,
    report: Report,
    report_once: Callable[[str, PathT, str], None],
) -> None:
    _string_keys(node, path, report)
    for key in NAMED_LISTS.intersection(node):
        value = node[key]
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            node[key] = [{"name": name, **spec} for name, spec in value.items()]
            report_once("named-map", (*path, key), f"'{key}' written as a map: read as a list")
    if "display" in node:
        if "label" not in node:
            node["label"] = node.pop("display")
        report_once("display", (*path, "display"), "'display' is Ikanos: read as 'label'")
    if "flows" in node and "functions" not in node:
        node["functions"] = node.pop("flows")
        report_once("flows", (*path, "flows"), "'flows' is Ikanos: read as 'functions'")
    in_mappings = path[-1:] == ("mappings",) or path[-2:-1] == ("mappings",)
    if in_mappings and "target" in node and "targetName" not in node:
        node["targetName"] = node.pop("target")
        report_once("target", (*path, "target"), "'target' is Ikanos: read as 'targetName'")
    if "name" in node and node["name"] is None:
        del node["name"]
        report((*path, "name"), "'name' is empty")
    elif "name" in node and isinstance(node["name"], int | float | bool):
        node["name"] = _scalar_text(node["name"], "")
    if "items" in node:
        items = node["items"]
        if _named_properties(node, items):
            node["items"] = {"type": "object", "properties": items}
            report_once(
                "items-map",
                (*path, "items"),
                "'items' written as a map of named properties: read as an object schema",
            )
        elif _named_entries(items):
            # alpha2's own form for an orchestrated array: a list of named properties
            props = {str(p["name"]): {k: v for k, v in p.items() if k != "name"} for p in items}
            node["items"] = {"type": "object", "properties": props}
        elif isinstance(items, list):
            if len(items) == 1 and isinstance(items[0], dict):
                node["items"] = items[0]
                report((*path, "items"), "'items' should be one schema, not a list: reduced")
            else:
                del node["items"]
                report((*path, "items"), "'items' should be one schema: ignored")
        elif isinstance(items, str):
            node["items"] = {"type": items}
            report((*path, "items"), f"'items' should be a schema: read as {{type: {items}}}")
        elif items is None:
            del node["items"]
    props = node.get("properties")
    if isinstance(props, list) and all(isinstance(p, dict) and "name" in p for p in props):
        node["properties"] = {str(p["name"]): p for p in props}
        report((*path, "properties"), "'properties' should be a map: read by name")
    elif isinstance(props, dict) and path[-1:] != ("data",):
        for name, spec in list(props.items()):
            if isinstance(spec, str):
                props[name] = {"type": spec}
            elif spec is None:
                props[name] = {}
    method = node.get("method")
    if isinstance(method, str) and method != method.upper() and "operations" in path:
        node["method"] = method.upper()
        report((*path, "method"), f"method {method!r} should be upper case")
    kind = node.get("type")
    if path[-1:] == ("body",) and isinstance(kind, str) and kind in _BODY_ALIASES:
        node["type"] = _BODY_ALIASES[kind]
        report((*path, "type"), f"body type {kind!r} read as {node['type']!r}")
    if isinstance(kind, str) and kind in _API_KEY_TYPES and path[-1:] == ("authentication",):
        _api_key(node, path, report)
    tags = node.get("tags")
    if isinstance(tags, list) and any(not isinstance(t, str) for t in tags):
        node["tags"] = [_scalar_text(t, "") for t in tags if t is not None]
        report((*path, "tags"), "tags should be strings: read as text")
    elif isinstance(tags, str):
        node["tags"] = [tags]
        report((*path, "tags"), "'tags' should be a list")


_SCHEMA_KEYS = frozenset({"type", "properties", "items", "values", "mapping", "value", "const"})


def _named_properties(node: dict[str, Any], items: Any) -> bool:
    """An Ikanos array output's ``items``: a map of named properties, not one schema."""
    return (
        node.get("type") == "array"
        and isinstance(items, dict)
        and bool(items)
        and all(isinstance(v, dict) for v in items.values())
        and not _SCHEMA_KEYS.issuperset(items)
    )


def _named_entries(items: Any) -> bool:
    """A list of objects that each have a ``name`` (and no two the same)."""
    if not isinstance(items, list) or not items:
        return False
    if not all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in items):
        return False
    return len({p["name"] for p in items}) == len(items)


def _string_keys(node: dict[Any, Any], path: PathT, report: Report) -> None:
    for key in [k for k in node if not isinstance(k, str)]:
        text = "null" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
        node[text] = node.pop(key)
        report((*path, text), f"key {text!r} is not a string: read as text")


def _api_key(node: dict[str, Any], path: PathT, report: Report) -> None:
    """OpenAPI-style ``in``/``name`` apikey -> ``placement``/``key``."""
    if node["type"] != "apikey":
        report((*path, "type"), f"authentication type {node['type']!r} read as 'apikey'")
        node["type"] = "apikey"
    if "in" in node and "placement" not in node:
        node["placement"] = node.pop("in")
        report((*path, "in"), "apikey 'in' is OpenAPI style: read as 'placement'")
    if "name" in node and "key" not in node:
        node["key"] = node.pop("name")
        report((*path, "name"), "apikey 'name' is OpenAPI style: read as 'key'")


_MERGE_IGNORED = frozenset({"resources", "description", "label"})


def merge_consumes(
    consumes: list[Any], path: PathT, report: Report
) -> tuple[list[str], list[tuple[PathT, PathT]]]:
    """Merge entries that repeat a namespace with the same base URI and settings.

    Published documents split one API into several entries of one namespace, one per
    group of resources; ``ns.op`` calls only make sense on the union. Returns the
    namespaces that clash for real (different base URI or auth), for the caller to refuse,
    and the renumbering ``(new path, original path)`` of what moved, most specific first.
    """
    first: dict[str, int] = {}
    clashes: list[str] = []
    drop: list[int] = []
    moved: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
    for i, entry in enumerate(consumes):
        ns = entry.get("namespace") if isinstance(entry, dict) else None
        if not isinstance(ns, str) or not ns:
            continue
        if ns not in first:
            first[ns] = i
            continue
        target = consumes[first[ns]]
        same = {k: v for k, v in entry.items() if k not in _MERGE_IGNORED} == {
            k: v for k, v in target.items() if k not in _MERGE_IGNORED
        }
        if not same or not isinstance(entry.get("resources", []), list):
            clashes.append(ns)
            continue
        kept = list(target.get("resources") or [])
        added = list(entry.get("resources") or [])
        moved += [
            ((first[ns], "resources", len(kept) + j), (i, "resources", j))
            for j in range(len(added))
        ]
        target["resources"] = kept + added
        drop.append(i)
        report(
            (*path, i, "namespace"),
            f"namespace {ns!r} repeats consumes[{first[ns]}] with the same settings: "
            "resources merged into it",
        )
    originals = [i for i in range(len(consumes)) if i not in set(drop)]
    new_index = {old: new for new, old in enumerate(originals)}
    renumbered = [((*path, new_index[a[0]], *a[1:]), (*path, *b)) for a, b in moved]
    renumbered += [((*path, new), (*path, old)) for old, new in new_index.items() if new != old]
    for i in reversed(drop):
        del consumes[i]
    return clashes, renumbered
