"""Beta4 twins of alpha2 test documents, made by ``naftiko convert`` while the tests run.

An end-to-end suite parametrized over :data:`FORMS` serves the same scenarios from the
alpha2 original and from its Ikanos 1.0.0-beta4 twin, and asserts the same answers: the
engine and the adapters must not care which format a document was written in. The twin
is written beside a copy of the original's folder, so relative imports, resource and
prompt locations resolve as they do for the original.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from naftiko.cli.convert import IKANOS_TARGET, convert_text

FORMS = ("alpha2", "beta4-twin")
_MADE: dict[tuple[Path, bool], Path] = {}  # one conversion per document per session


def beta4_twin(path: Path, folder: Path, *, strict: bool = True) -> Path:
    """``path`` converted to beta4 in (a copy of its folder under) ``folder``.

    ``strict``: the twin must validate against the beta4 schema (the converter refuses
    otherwise). Documents that bend alpha2's own schema keep the same bends in their twin
    (``--force``): the loader reads both the same way, which is what is compared."""
    if (path, strict) in _MADE:
        return _MADE[(path, strict)]
    copy = folder / path.parent.name
    if not copy.exists():
        shutil.copytree(path.parent, copy, symlinks=True)
    twin = copy / f"{path.stem}.beta4.yaml"
    if not twin.exists():
        text, _ = convert_text(path.read_text(encoding="utf-8"), IKANOS_TARGET, check=strict)
        assert re.search(r"^ikanos: ", text, re.MULTILINE), text[:200]
        twin.write_text(text, encoding="utf-8")
    _MADE[(path, strict)] = twin
    return twin


def served_form(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, *, strict: bool
) -> Callable[[Path], Path]:
    """For a fixture parametrized over :data:`FORMS`: the document a test serves, given
    the alpha2 one it names."""
    if request.param == "alpha2":
        return lambda path: path
    folder = tmp_path_factory.mktemp("twin")
    return lambda path: beta4_twin(path, folder, strict=strict)


def unchanged(path: Path) -> Path:
    """A module's ``as_served`` before :func:`twin_forms` sets it: the document itself."""
    return path


def twin_forms(module_name: str) -> Callable[..., str]:
    """An autouse fixture for module ``module_name``: every scenario runs from the alpha2
    document and from its beta4 twin (written with ``--force``: these documents bend
    alpha2's schema, and the twin keeps the bends), through the module's ``as_served``."""

    @pytest.fixture(autouse=True, params=FORMS)
    def document_form(
        request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> str:
        twin = served_form(request, tmp_path_factory, strict=False)
        monkeypatch.setattr(sys.modules[module_name], "as_served", twin)
        return str(request.param)

    return document_form
