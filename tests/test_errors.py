"""The exception tree of ``naftiko.errors``: complete, documented, and importable by all.

Walks every module under ``src/naftiko``: a new exception class outside the tree, or
missing from the tree drawn in ``errors.py``'s docstring, fails here.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import naftiko
from naftiko import errors
from naftiko.errors import NaftikoError

SRC = Path(naftiko.__file__).resolve().parent


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(naftiko.__path__, "naftiko.")]
    return [n for n in names if not n.endswith("__main__")]  # runs the CLI on import


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined (not merely imported) in a naftiko module."""
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
            ):
                found[f"{name}.{value.__qualname__}"] = value
    return found


def test_the_walk_finds_the_classes_it_must() -> None:
    found = _exception_classes()
    # One per layer, a private one and one with a library base: the walk is not empty.
    for name in (
        "naftiko.errors.NaftikoError",
        "naftiko.spec.diagnostics.LoadError",
        "naftiko.upstream.request.RequestError",
        "naftiko.adapters.rest.bodies.Refused",
        "naftiko.upstream.decoding.TooManyCodings",
        "naftiko.runtime.placement.PlacementError",
    ):
        assert name in found


def test_every_exception_class_derives_from_naftiko_error() -> None:
    outside = [
        name for name, cls in _exception_classes().items() if not issubclass(cls, NaftikoError)
    ]
    assert outside == []


def test_every_exception_class_is_drawn_in_the_tree() -> None:
    doc = errors.__doc__ or ""
    drawn = set(re.findall(r"── (\w+)", doc))
    classes = {cls.__qualname__ for cls in _exception_classes().values()}
    assert "\n    NaftikoError\n" in doc  # the root
    assert classes - drawn == {"NaftikoError"}  # every class has its place
    assert drawn - classes == set()  # and the drawing names no class that is gone


def test_no_exception_class_hides_below_module_level() -> None:
    """The walk sees module-level classes only: exception classes must live there."""
    hidden = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and id(node) not in top:
                bases = [ast.unparse(base) for base in node.bases]
                if any(b.endswith(("Error", "Exception", "Failure")) for b in bases):
                    hidden.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}")
    assert hidden == []


def test_errors_imports_nothing_of_ours() -> None:
    tree = ast.parse((SRC / "errors.py").read_text(encoding="utf-8"))
    ours = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or "naftiko" in (node.module or "")):
            ours.append(ast.unparse(node))
        if isinstance(node, ast.Import) and any(a.name.startswith("naftiko") for a in node.names):
            ours.append(ast.unparse(node))
    assert ours == []
    # And at run time: importing it loads no other module of ours.
    probe = "import sys, naftiko.errors; print(sorted(m for m in sys.modules if 'naftiko' in m))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['naftiko', 'naftiko.errors']"


def test_response_too_large_is_one_class_under_both_names() -> None:
    from naftiko.upstream import decoding, transport

    assert decoding.BodyTooLarge is errors.ResponseTooLarge
    assert transport.ResponseTooLarge is errors.ResponseTooLarge
    assert str(errors.ResponseTooLarge(10, 200)) == "response larger than 10 bytes"
    decoded = errors.ResponseTooLarge(10, decoded=True)
    assert str(decoded) == "decoded response larger than 10 bytes"
    assert (decoded.limit, decoded.status, decoded.decoded) == (10, None, True)


def test_the_status_mapping_is_the_engine_contracts() -> None:
    from naftiko.engine import types

    assert types.STATUS is errors.STATUS
    assert types.ErrorKind is errors.ErrorKind


@pytest.mark.parametrize(
    ("path", "library_base"),
    [
        ("naftiko.upstream.decoding.TooManyCodings", httpx.DecodingError),
        ("naftiko.upstream.transport.ResponseHeadTooLarge", httpx.RemoteProtocolError),
        ("naftiko.upstream.transport.DeadlineExceeded", TimeoutError),
        ("naftiko.upstream.formats.FormatError", ValueError),
        ("naftiko.templating.TemplateError", ValueError),
        ("naftiko.runtime.config.ConfigError", ValueError),
        ("naftiko.engine.static_files.PathRejected", ValueError),
    ],
)
def test_library_bases_are_kept(path: str, library_base: type[BaseException]) -> None:
    """``except httpx.HTTPError`` / ``except ValueError`` clauses still catch these."""
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, library_base)
    assert issubclass(cls, NaftikoError)
