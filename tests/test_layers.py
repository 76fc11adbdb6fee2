"""The package's layers: every import points down, and no module imports itself back.

The picture is ARCHITECTURE.md's. Every ``import`` of a ``naftiko`` module counts, at the
top of a file or inside a function, and under ``TYPE_CHECKING`` too: a lazy or type-only
import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import naftiko

ROOT = Path(naftiko.__file__).parent

# Bottom up. A module may import its own layer and the layers below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "naftiko",
            "naftiko.errors",
            "naftiko.observability",
            "naftiko.media_types",
            "naftiko.json_codec",
            "naftiko.template_syntax",
            "naftiko.templating",
            "naftiko.tracing",
        ),
    ),
    ("spec", ("naftiko.spec",)),
    ("upstream", ("naftiko.upstream",)),
    ("engine", ("naftiko.engine",)),
    ("compile", ("naftiko.compile",)),
    ("adapters.http", ("naftiko.adapters.http",)),
    (
        "adapters",
        (
            "naftiko.adapters",
            "naftiko.adapters.rest",
            "naftiko.adapters.mcp",
            "naftiko.adapters.skill",
            "naftiko.adapters.control",
        ),
    ),
    ("runtime", ("naftiko.runtime",)),
    ("cli", ("naftiko.cli", "naftiko.__main__")),
)
# Adapters never import each other: what they share lives in ``adapters.http``.
ADAPTERS = (
    "naftiko.adapters.rest",
    "naftiko.adapters.mcp",
    "naftiko.adapters.skill",
    "naftiko.adapters.control",
)
# Arrows still pointing up, each to be removed by moving the code to its layer.
PENDING: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``naftiko`` modules ``name`` imports (``from pkg import module`` resolved)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("naftiko")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("naftiko"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    found.discard(name)
    return found


def layer_of(name: str) -> tuple[int, str]:
    best: tuple[int, int, str] | None = None
    for rank, (layer, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = name == prefix or name.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix), layer)
    assert best is not None, f"{name} belongs to no layer: add it to LAYERS"
    return best[0], best[2]


def adapter_of(name: str) -> str | None:
    return next((a for a in ADAPTERS if name == a or name.startswith(a + ".")), None)


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_every_import_points_down() -> None:
    wrong = []
    for name, targets in graph().items():
        rank, layer = layer_of(name)
        for target in sorted(targets):
            target_rank, target_layer = layer_of(target)
            if target_rank > rank:
                wrong.append(f"{name} ({layer}) imports {target} ({target_layer})")
            own, other = adapter_of(name), adapter_of(target)
            if own and other and own != other:
                wrong.append(f"{name} imports another adapter: {target}")
    assert sorted(set(wrong) - PENDING) == []
    assert sorted(PENDING - set(wrong)) == [], "fixed: remove it from PENDING"


def test_no_import_cycle() -> None:
    edges = graph()
    cycles = [sorted(c) for c in _strongly_connected(edges) if len(c) > 1]
    assert cycles == []


def test_every_module_says_what_it_is() -> None:
    missing = [
        name
        for name, path in modules().items()
        if not (ast.get_docstring(ast.parse(path.read_text())) or "").strip()
    ]
    assert missing == []


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[set[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    result.append(component)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return result
