"""``naftiko convert FILE --to ikanos-1.0.0-beta4|naftiko-1.0.0-alpha2 [-o OUT]``.

Rewrites a capability document from one format to the other with ruamel.yaml, which
keeps comments and key order where it can (an entry that moves from a list to a map
keeps its own keys and their comments). Naftiko -> Ikanos first applies the loader's
lenient rewrites (``naftiko.spec.normalize``: what the published documents bend, such as
``info.title`` or lower-case methods), then renames and re-keys by the Ikanos rules;
the result must validate against the bundled beta4 schema, otherwise nothing is written
and each violation is listed with the source line it comes from (ruamel nodes keep their
positions when they move) and the construct it is about, saying so when the source
breaks the same rule of its own alpha2 schema (most published documents do). Ikanos ->
Naftiko refuses, one line each, what alpha2 has no way to say (tags, binary content,
caching hints, tunnels, imports outside ``consumes``...) rather than dropping it silently.

REST operations and resources are keyed by name in Ikanos but may be unnamed in alpha2;
an unnamed one gets a name made from its method and path (``get-users-id``), and the way
back drops a name that is exactly that, so the units keep their ids both ways.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path
from typing import Any

from naftiko.errors import LoadTimeError

IKANOS_TARGET = "ikanos-1.0.0-beta4"
NAFTIKO_TARGET = "naftiko-1.0.0-alpha2"
TARGETS = (IKANOS_TARGET, NAFTIKO_TARGET)


class ConversionError(LoadTimeError):
    """The document cannot be expressed in the target version; ``problems`` says why,
    ``lines`` where each one is in the source (1-based, None when unknown)."""

    def __init__(self, problems: list[str], lines: list[int | None] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.lines = lines if lines is not None else [None] * len(problems)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="FILE", help="the capability document to convert")
    parser.add_argument("--to", required=True, choices=TARGETS, help="the target version")
    parser.add_argument("-o", "--output", metavar="OUT", help="write here (default: stdout)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="write an Ikanos document even if it does not validate against the beta4 "
        "schema (the source bends its own schema); its violations are printed as warnings",
    )


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: error: cannot read: {exc}", file=sys.stderr)
        return 2
    try:
        result, violations = convert_text(text, args.to, check=not args.force)
    except ConversionError as exc:
        for problem, line in zip(exc.problems, exc.lines, strict=True):
            where = f"{path}:{line}" if line else str(path)
            print(f"{where}: error: {problem}", file=sys.stderr)
        print(f"{path}: not converted to {args.to}", file=sys.stderr)
        return 2
    for violation in violations:
        where = f"{path}:{violation.line}" if violation.line else str(path)
        print(f"{where}: warning: {violation}", file=sys.stderr)
    if args.output:
        Path(args.output).write_text(result, encoding="utf-8")
    else:
        sys.stdout.write(result)
    return 0


# --------------------------------------------------------------------------- YAML


def _yaml() -> Any:
    from ruamel.yaml import YAML  # only this command needs it

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long description differently from its source
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def convert_text(text: str, target: str, *, check: bool = True) -> tuple[str, list[Violation]]:
    """``text`` (YAML or JSON) converted to ``target``, and the target schema's violations
    (``check=False`` only: otherwise they raise); raises :class:`ConversionError`."""
    from ruamel.yaml import YAMLError

    yaml = _yaml()
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise ConversionError([f"not YAML: {str(exc).splitlines()[0]}"]) from None
    if not isinstance(data, dict) or not ("naftiko" in data or "ikanos" in data):
        raise ConversionError(["not a capability document: no 'naftiko' or 'ikanos' key"])
    data, violations = convert(data, target, check=check)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue(), violations


def convert(
    data: dict[str, Any], target: str, *, check: bool = True
) -> tuple[dict[str, Any], list[Violation]]:
    """Convert a parsed document (ruamel round-trip data) in place; returns it and, with
    ``check=False``, the target schema's violations (which otherwise raise)."""
    if target == IKANOS_TARGET:
        bent: set[tuple[int | None, str]] = set()
        if "ikanos" in data:
            data["ikanos"] = "1.0.0-beta4"  # another release: the schema says what differs
        else:
            # what the source already breaks of its own (alpha2) schema, by line: the same
            # rule broken in the result is the source's, said so rather than blamed on us
            bent = {(v.line, v.rule) for v in _violations(_plain(data), data, "")}
            data = to_ikanos(data)
        violations = _violations(_plain(data), data, IKANOS_TARGET, bent)
        if violations and check:
            raise ConversionError(list(violations), [v.line for v in violations])
        return data, violations
    if target == NAFTIKO_TARGET:
        return (to_naftiko(data) if "ikanos" in data else data), []
    raise ConversionError([f"unknown target {target!r}: one of {', '.join(TARGETS)}"])


class Violation(str):
    """One line saying what the target schema refuses; ``line`` is where, in the source."""

    line: int | None
    rule: str


def schema_violations(data: dict[str, Any]) -> list[Violation]:
    """What the beta4 schema finds wrong with an Ikanos document, one line each."""
    return _violations(_plain(data), data, IKANOS_TARGET)


def _violations(
    plain: Any,
    data: Any,
    target: str,
    bent: set[tuple[int | None, str]] | frozenset[Any] = frozenset(),
) -> list[Violation]:
    """``plain`` checked against its own version's schema; each violation names the
    construct and, through ``data`` (ruamel nodes keep their source positions when they
    move), the line of the source it came from. Empty ``target``: raw rules, no text."""
    from naftiko.spec.strict import check_schema

    found: list[tuple[tuple[Any, ...], str]] = []

    class _Sink:
        def error(self, path: Any, message: str) -> None:
            found.append((tuple(path), message))

    check_schema(plain, _Sink())  # type: ignore[arg-type]  # only .error is called
    out: list[Violation] = []
    found = [located for path, message in found for located in _by_key(plain, path, message)]
    for path, message in found:
        rule = message.removeprefix("schema: ")
        line = _source_line(data, path)
        text = f"cannot be expressed in {target}: {_construct(plain, path)}: {rule}"
        if (line, rule) in bent:
            text += " (the source breaks this rule of naftiko 1.0.0-alpha2 too)"
        violation = Violation(text)
        violation.line, violation.rule = line, rule
        out.append(violation)
    return sorted(out, key=lambda v: v.line or 0)  # in the order of the source


def _by_key(plain: Any, path: tuple[Any, ...], message: str) -> list[tuple[tuple[Any, ...], str]]:
    """A name pattern failed on a keyed map (``propertyNames``): one violation per key
    that breaks it, at that entry, which is where alpha2 reported its ``name``."""
    prefix = "schema: does not match the pattern "
    node = plain
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return [(path, message)]
    if not message.startswith(prefix) or not isinstance(node, dict):
        return [(path, message)]
    pattern = re.compile(message.removeprefix(prefix))
    bad = [k for k in node if not pattern.search(str(k))]
    return [((*path, k), message) for k in bad] or [(path, message)]


def _source_line(data: Any, path: tuple[Any, ...]) -> int | None:
    """The 1-based source line of the node at ``path`` (or of its nearest ancestor that
    still has one: maps the converter made have none)."""
    node, line = data, None
    for key in path:
        lc = getattr(node, "lc", None)
        try:
            at = lc.key(key) if isinstance(node, dict) else lc.item(key)
        except (AttributeError, KeyError, IndexError, TypeError):
            at = None
        if at is not None:
            line = at[0]
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        first = getattr(getattr(node, "lc", None), "line", None)
        if at is None and first is not None:
            line = first
    return line + 1 if line is not None else None


# What an entry of each keyed container is called in a refusal.
_KINDS = {
    "consumes": "consumed API",
    "exposes": "adapter",
    "aggregates": "aggregate",
    "resources": "resource",
    "operations": "operation",
    "inputParameters": "input parameter",
    "outputParameters": "output parameter",
    "tools": "tool",
    "prompts": "prompt",
    "arguments": "prompt argument",
    "steps": "step",
    "skills": "skill",
    "flows": "flow",
    "functions": "function",
    "properties": "property",
    "binds": "bind",
}


def _construct(plain: Any, path: tuple[Any, ...]) -> str:
    """The entry a schema path points into, by kind and name (``input parameter 'id' of
    operation 'get-user'``), then the field inside it, if any."""
    names: list[str] = []
    node, i, field = plain, 0, ""
    last_entry = -1
    while i < len(path):
        key = path[i]
        if key in _KINDS and i + 1 < len(path):
            container = node.get(key) if isinstance(node, dict) else None
            ident = path[i + 1]
            try:
                entry = container[ident]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                break
            kind = _KINDS[key]
            if key == "exposes" and isinstance(entry, dict):
                kind = f"{entry.get('type', '')} adapter".strip()
            label = ident if isinstance(ident, str) else None
            if label is None and isinstance(entry, dict):
                label = entry.get("namespace") or entry.get("name")
            names.append(f"{kind} {label!r}" if label else f"{kind} [{ident}]")
            node, i, last_entry = entry, i + 2, i + 1
            continue
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        i += 1
    rest = path[last_entry + 1 :]
    if rest:
        field = ".".join(str(k) for k in rest)
    where = " of ".join(reversed(names)) if names else ""
    if field and where:
        return f"'{field}' of {where}"
    return f"'{field}'" if field else (where or "the document")


def _plain(value: Any) -> Any:
    """ruamel's containers and scalars as plain Python (for jsonschema and the loader)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


# --------------------------------------------------------------------------- helpers


def _rename(node: Any, old: str, new: str) -> None:
    """Rename a key of a mapping in place, keeping its position (and comments)."""
    if not isinstance(node, dict) or old not in node or new in node:
        return
    keys = list(node.keys())
    position = keys.index(old)
    comments = getattr(getattr(node, "ca", None), "items", {}).pop(old, None)
    value = node.pop(old)
    if hasattr(node, "insert"):
        node.insert(position, new, value)
        if comments is not None:
            node.ca.items[new] = comments  # the comment after the key moves with it
    else:
        node[new] = value


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "root"


# Marks a name the converter made up (the entry had none): the way back drops it again.
GENERATED = "# name made by naftiko convert"


def _is_generated(keyed: Any, name: Any) -> bool:
    comments = getattr(getattr(keyed, "ca", None), "items", {}).get(name) or ()
    return any(GENERATED in getattr(token, "value", "") for token in comments if token)


def generated_operation_name(method: Any, path: Any) -> str:
    return _slug(f"{method or 'GET'} {path or ''}")


def generated_resource_name(path: Any) -> str:
    return _slug(str(path or "/"))


def _keyed(
    items: Any,
    where: str,
    problems: list[str],
    fill: Any = None,
    each: Any = None,
    rekey: Any = None,
) -> Any:
    """A list of objects with ``name`` as a map keyed by it (the entries keep their keys)."""
    from ruamel.yaml.comments import CommentedMap

    if not isinstance(items, list):
        return items
    if id(items) in _SHARED:
        # the same list again, through a YAML alias: the same map (dumped as an alias)
        return _SHARED[id(items)][1]
    keyed = CommentedMap()
    anchor = getattr(getattr(items, "anchor", None), "value", None)
    if anchor:
        keyed.yaml_set_anchor(anchor)  # the alias keeps the author's anchor name
    _SHARED[id(items)] = (items, keyed)  # the list is kept alive so its id stays unique
    generated: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(
                _at(f"{where}[{i}] is not an object: Ikanos keys these by name", items, i)
            )
            continue
        name = item.pop("name", None)
        if name in (None, "") and fill is not None:
            name = fill(item)
            generated.append(name)
        if name in (None, ""):
            problems.append(_at(f"{where}[{i}] has no name: Ikanos keys these by name", items, i))
            continue
        name = str(name)
        if name in keyed and rekey is not None:
            # a clash of names that identify nothing (resources): a free one from the path
            base = rekey(item)
            name = next(
                n for n in (base, *(f"{base}-{k}" for k in range(2, 10**6))) if n not in keyed
            )
        if name in keyed:
            problems.append(
                _at(f"{where}: two entries named {name!r}: Ikanos keys them by name", items, i)
            )
            continue
        if each is not None:
            each(item, f"{where}.{name}")
        keyed[name] = item
    for name in generated:
        if name in keyed:
            keyed.yaml_add_eol_comment(GENERATED, name)
    return keyed


# --------------------------------------------------------------------------- to Ikanos

# Lists already keyed in this conversion, by id: a list shared through a YAML anchor
# is converted once (its entries lose their ``name`` the first time).
_SHARED: dict[int, tuple[Any, Any]] = {}


def to_ikanos(data: dict[str, Any]) -> dict[str, Any]:
    """A ``naftiko:`` document (ruamel data) rewritten as Ikanos 1.0.0-beta4."""
    from naftiko.spec.normalize import normalize

    normalize(data, lambda _path, _message: None)  # the loader's lenient rewrites
    problems: list[str] = []
    _SHARED.clear()
    _rename(data, "naftiko", "ikanos")
    data["ikanos"] = "1.0.0-beta4"
    _rename(data.get("info"), "label", "display")
    capability = data.get("capability")
    for owner, prefix in ((data, ""), (capability, "capability.")):
        if not isinstance(owner, dict):
            continue
        consumes = owner.get("consumes") or []
        for i, entry in enumerate(consumes):
            if isinstance(entry, dict) and "location" in entry:
                _rename(entry, "location", "from")
            elif isinstance(entry, dict) and "import" in entry and "namespace" not in entry:
                # a pre-alpha 'import: FILE' (alpha2 reads no import in it): Ikanos would
                # read an import that names no file, and the namespace to import is unknown
                text = f"{prefix}consumes[{i}]: an import with no 'location' ('import: FILE')"
                problems.append(_at(f"cannot be expressed in {IKANOS_TARGET}: {text}", consumes, i))
            elif isinstance(entry, dict):
                _consumes(entry, f"{prefix}consumes[{i}]", problems)
    if isinstance(capability, dict):
        exposes, aggregates = capability.get("exposes") or [], capability.get("aggregates") or []
        for i, entry in enumerate(exposes):
            if isinstance(entry, dict):
                if entry.get("type") in ("rest", "mcp", "skill") and not entry.get("namespace"):
                    # alpha2 forgives it (nothing can address the units); Ikanos refuses it
                    text = f"capability.exposes[{i}]: a {entry['type']} adapter with no namespace"
                    problems.append(
                        _at(f"cannot be expressed in {IKANOS_TARGET}: {text}", exposes, i)
                    )
                _exposes(entry, f"capability.exposes[{i}]", problems)
        for i, entry in enumerate(aggregates):
            if isinstance(entry, dict):
                if not entry.get("namespace"):
                    text = f"capability.aggregates[{i}]: an aggregate with no namespace"
                    problems.append(
                        _at(f"cannot be expressed in {IKANOS_TARGET}: {text}", aggregates, i)
                    )
                _aggregate(entry, f"capability.aggregates[{i}]", problems)
    _SHARED.clear()
    if problems:
        raise ConversionError(problems, [getattr(p, "line", None) for p in problems])
    return data


def _at(text: str, items: Any, index: int) -> Violation:
    """A refusal about ``items[index]``, with its source line."""
    problem = Violation(text)
    problem.line, problem.rule = _source_line(items, (index,)), text
    return problem


def _params(node: dict[str, Any], where: str, problems: list[str]) -> None:
    if "inputParameters" in node:
        node["inputParameters"] = _keyed(
            node["inputParameters"], f"{where}.inputParameters", problems
        )


def _consumes(entry: dict[str, Any], where: str, problems: list[str]) -> None:
    _params(entry, where, problems)

    def operation(op: dict[str, Any], at: str) -> None:
        _rename(op, "label", "display")
        _params(op, at, problems)
        if "outputParameters" in op:
            op["outputParameters"] = _keyed(
                op["outputParameters"], f"{at}.outputParameters", problems
            )

    def resource(res: dict[str, Any], at: str) -> None:
        _rename(res, "label", "display")
        _params(res, at, problems)
        if "operations" in res:
            path = res.get("path")
            res["operations"] = _keyed(
                res["operations"],
                f"{at}.operations",
                problems,
                lambda op: generated_operation_name(op.get("method"), path),
                operation,
            )

    if "resources" not in entry:
        return
    entry["resources"] = _keyed(
        entry.get("resources"),
        f"{where}.resources",
        problems,
        None,
        resource,
        lambda res: generated_resource_name(res.get("path")),
    )


def _exposes(entry: dict[str, Any], where: str, problems: list[str]) -> None:
    kind = entry.get("type")
    if kind == "rest":
        _params(entry, where, problems)

        def resource(res: dict[str, Any], at: str) -> None:
            _rename(res, "label", "display")
            _params(res, at, problems)
            path = res.get("path")
            if "operations" in res:
                res["operations"] = _keyed(
                    res["operations"],
                    f"{at}.operations",
                    problems,
                    lambda op: generated_operation_name(op.get("method"), path),
                    lambda op, a: _unit(op, a, problems),
                )

        if "resources" in entry:
            entry["resources"] = _keyed(
                entry["resources"],
                f"{where}.resources",
                problems,
                lambda res: generated_resource_name(res.get("path")),
                resource,
                lambda res: generated_resource_name(res.get("path")),
            )
    elif kind == "mcp":
        for key in ("tools", "resources"):
            if key in entry:
                entry[key] = _keyed(
                    entry[key], f"{where}.{key}", problems, None, lambda u, a: _unit(u, a, problems)
                )

        def prompt(p: dict[str, Any], at: str) -> None:
            _rename(p, "label", "display")
            if "arguments" in p:
                p["arguments"] = _keyed(
                    p["arguments"],
                    f"{at}.arguments",
                    problems,
                    None,
                    lambda arg, _a: _rename(arg, "label", "display"),
                )

        if "prompts" in entry:
            entry["prompts"] = _keyed(entry["prompts"], f"{where}.prompts", problems, None, prompt)
    elif kind == "skill":

        def skill(s: dict[str, Any], at: str) -> None:
            if "tools" in s:
                s["tools"] = _keyed(s["tools"], f"{at}.tools", problems)

        if "skills" in entry:
            entry["skills"] = _keyed(entry["skills"], f"{where}.skills", problems, None, skill)


def _aggregate(entry: dict[str, Any], where: str, problems: list[str]) -> None:
    _rename(entry, "label", "display")
    if "functions" in entry:
        entry["functions"] = _keyed(
            entry["functions"],
            f"{where}.functions",
            problems,
            None,
            lambda fn, a: _unit(fn, a, problems),
        )
        _rename(entry, "functions", "flows")


def _unit(unit: dict[str, Any], where: str, problems: list[str]) -> None:
    """An exposed operation, MCP tool or resource, or aggregate function."""
    _rename(unit, "label", "display")
    _params(unit, where, problems)
    if "steps" in unit:
        unit["steps"] = _keyed(unit["steps"], f"{where}.steps", problems)
    for mapping in unit.get("mappings") or []:
        _rename(mapping, "targetName", "target")
    outputs = unit.get("outputParameters")
    if isinstance(outputs, list) and "call" not in unit and "ref" not in unit:
        # orchestrated (steps) or mock outputs are keyed by name; mapped ones stay a list
        unit["outputParameters"] = _keyed(
            outputs, f"{where}.outputParameters", problems, None, _orchestrated
        )


def _orchestrated(output: dict[str, Any], _where: str) -> None:
    """Nested ``items`` of an orchestrated array: a map of named properties; a nested
    property's ``name`` that repeats its key (alpha2 allows it) is dropped, Ikanos has none."""
    for key, spec in (output.get("properties") or {}).items():
        if isinstance(spec, dict):
            if spec.get("name") == key:
                del spec["name"]
            _orchestrated(spec, _where)
    items = output.get("items")
    if isinstance(items, dict):
        _orchestrated(items, _where)
        props = items.get("properties")
        if isinstance(props, dict) and props and set(items) <= {"type", "properties"}:
            output["items"] = props


# --------------------------------------------------------------------------- to Naftiko

# Ikanos keys alpha2 has no way to say, by where they appear (a key: what it is).
_NOT_IN_ALPHA2 = {
    "tags": "tags (alpha2 has them on info only)",
    "outputMediaType": "binary content (outputMediaType, beta1)",
    "maxBinarySize": "binary content (maxBinarySize, beta1)",
    "responses": "declared responses (beta1)",
    "responseBinary": "binary responses (responseBinary, beta1)",
    "binary": "binary MCP resources (beta1)",
    "ttlMs": "MCP caching hints (ttlMs, beta4)",
    "cacheScope": "MCP caching hints (cacheScope, beta4)",
    "tunnel": "tunnels (tunnel, alpha3)",
}


def to_naftiko(data: dict[str, Any]) -> dict[str, Any]:
    """An ``ikanos:`` document (ruamel data) rewritten as Naftiko 1.0.0-alpha2."""
    from naftiko.spec.normalize import normalize

    problems = _alpha2_problems(data)
    if problems:
        raise ConversionError(problems)
    _unkey(data, ())
    comments = getattr(getattr(data, "ca", None), "items", {}).pop("ikanos", None)
    normalize(data, lambda _path, _message: None)  # the loader's own Ikanos -> model rules
    data.pop("naftiko", None)
    if hasattr(data, "insert"):
        data.insert(0, "naftiko", "1.0.0-alpha2")
        if comments is not None:
            data.ca.items["naftiko"] = comments
    else:
        data["naftiko"] = "1.0.0-alpha2"
    capability = data.get("capability")
    for owner in (data, capability):
        for entry in (owner or {}).get("consumes") or []:
            if isinstance(entry, dict) and "from" in entry:
                _rename(entry, "from", "location")
    return data


def _unkey(node: Any, path: tuple[Any, ...]) -> None:
    """The Ikanos renames and named maps undone in place, before the loader's rules see
    them, so each entry keeps its position and its comments (``name`` comes first)."""
    from ruamel.yaml.comments import CommentedSeq

    from naftiko.spec.normalize import NAMED_LISTS, OPAQUE

    if isinstance(node, list):
        for i, item in enumerate(node):
            _unkey(item, (*path, i))
        return
    if not isinstance(node, dict):
        return
    _rename(node, "display", "label")
    _rename(node, "flows", "functions")
    if "mappings" in path[-2:]:
        _rename(node, "target", "targetName")
    for key in list(node):
        value = node[key]
        named = isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
        if key in NAMED_LISTS and named:
            seq = CommentedSeq()
            for name, entry in value.items():
                if _is_generated(value, name):
                    # unnamed in alpha2 before it was converted: so it is again
                    if getattr(entry, "ca", None) is not None:
                        entry.ca.comment = None
                elif hasattr(entry, "insert"):
                    entry.insert(0, "name", name)
                else:
                    entry = {"name": name, **entry}
                seq.append(entry)
            node[key] = value = seq
        if key not in OPAQUE and key != "with":
            _unkey(value, (*path, key))


def _alpha2_problems(data: dict[str, Any]) -> list[str]:
    from naftiko.spec.normalize import NAMED_LISTS

    problems: list[str] = []
    info = data.get("info")
    if isinstance(info, dict) and "version" in info:
        problems.append("info.version: a capability version (beta4)")
    for key in ("exposes", "aggregates"):
        if key in data and "capability" not in data:
            problems.append(f"{key}: file-scope {key} (a fragment file)")
    capability = data.get("capability")
    for owner, prefix in ((data, ""), (capability, "capability.")):
        if not isinstance(owner, dict):
            continue
        for key in ("exposes", "aggregates", "binds"):
            for i, entry in enumerate(owner.get(key) or []):
                if isinstance(entry, dict) and "from" in entry:
                    problems.append(
                        f"{prefix}{key}[{i}]: an import of {key} (alpha2 imports consumes only)"
                    )

    keyed_by_name = NAMED_LISTS | {"properties", "items"}

    def walk(node: Any, path: str, keyed: bool = False) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            at = f"{path}.{key}" if path else str(key)
            if keyed:  # the keys are names chosen by the author
                walk(value, at)
                continue
            if key in keyed_by_name and isinstance(value, dict):
                walk(value, at, keyed=True)
                continue
            if key in ("with", "data", "value", "const", "default", "metadata"):
                continue  # payloads, not spec objects
            if key in _NOT_IN_ALPHA2 and at != "info.tags":
                problems.append(f"{at}: {_NOT_IN_ALPHA2[key]}")
                continue
            walk(value, at)

    walk(data, "")
    return [f"cannot be expressed in naftiko 1.0.0-alpha2: {p}" for p in problems]
