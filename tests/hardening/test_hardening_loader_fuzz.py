"""Mutated corpus documents: the loader loads them or reports one-line diagnostics.

Hypothesis takes real documents from ``../shared/corpus`` and damages them the way
hands and tools do: keys dropped, values of the wrong type, garbage inserted, text cut
short or sprinkled with odd characters. ``load_capability`` must either return or raise
``LoadError`` whose diagnostics each format to one line; ``naftiko validate`` must exit
0 or 2 and never print a traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naftiko.cli.entry import main as cli_main
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import load_capability

FUZZ = settings(
    max_examples=int(os.environ.get("NAFTIKO_FUZZ_EXAMPLES", "80")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SAMPLE_SIZE = 60
MAX_BYTES = 40_000

# Values of every YAML type, odd ones included, to put where something else was.
GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["{{", "}}", "{{UNBOUND}}", "$.[", "../../etc/passwd", "\x00", "\u202e"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


JUNK = ["\t", ": :", "- -", "&a *a", "*nope", "!!python/object:os.system", "\ufeff", "{{", "'"]


def _corpus_documents(corpus: Path) -> list[tuple[Path, str]]:
    """A deterministic spread of capability documents from the corpus.

    Candidates are picked by name first and parsed afterwards: parsing all of the
    corpus would cost most of the suite's budget.
    """
    candidates = sorted(
        p
        for p in corpus.rglob("*")
        if p.suffix in (".yaml", ".yml") and p.is_file() and p.stat().st_size <= MAX_BYTES
    )
    step = max(1, len(candidates) // (SAMPLE_SIZE * 2))
    found = []
    for path in candidates[::step]:
        text = path.read_text(encoding="utf-8", errors="replace")
        if "naftiko:" not in text or "capability:" not in text:
            continue
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # the structural mutations start from a parsed tree
        if isinstance(parsed, dict):
            found.append((path, text))
        if len(found) == SAMPLE_SIZE:
            break
    return found


@pytest.fixture(scope="module")
def documents(shared_dir: Path) -> list[tuple[Path, str]]:
    docs = _corpus_documents(shared_dir / "corpus")
    if not docs:
        pytest.skip("no capability documents in the corpus")
    return docs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------- mutations


def _containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every dict and list in the tree (the root included)."""
    found = []
    if isinstance(node, dict):
        found.append(path)
        for key, value in node.items():
            found += _containers(value, (*path, key))
    elif isinstance(node, list):
        found.append(path)
        for index, value in enumerate(node):
            found += _containers(value, (*path, index))
    return found


def _at(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step]
    return root


def _mutate(data: Any, draw: Any) -> Any:
    containers = _containers(data)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target = _at(data, draw(st.sampled_from(containers)))
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        op = draw(st.sampled_from(["drop", "retype", "insert"]))
        if op == "insert" or not keys:
            if isinstance(target, dict):
                target[draw(st.text(max_size=12))] = draw(GARBAGE)
            else:
                target.append(draw(GARBAGE))
            continue
        key = draw(st.sampled_from(keys))
        if op == "drop":
            del target[key]
        else:
            target[key] = draw(GARBAGE)
        containers = _containers(data)  # the tree changed shape
        if not containers:
            break
    return data


def _dump(data: Any) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, ValueError):
        return "{}"


@st.composite
def mutated_structure(draw: Any, docs: list[tuple[Path, str]]) -> tuple[str, str]:
    path, text = docs[draw(st.integers(min_value=0, max_value=len(docs) - 1))]
    data = yaml.safe_load(text)
    return path.name, _dump(_mutate(data, draw))


@st.composite
def mutated_text(draw: Any, docs: list[tuple[Path, str]]) -> tuple[str, str]:
    path, text = docs[draw(st.integers(min_value=0, max_value=len(docs) - 1))]
    op = draw(st.sampled_from(["truncate", "insert", "replace"]))
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    if op == "truncate":
        return path.name, text[:cut]
    junk = draw(
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(JUNK),
        )
    )
    end = cut if op == "insert" else min(len(text), cut + draw(st.integers(0, 40)))
    return path.name, text[:cut] + junk + text[end:]


# --------------------------------------------------------------------------- checks


def _check_load(workdir: Path, name: str, text: str) -> None:
    target = workdir / name
    target.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_capability(target, env={}, require_binds=False)
    except LoadError as exc:
        assert exc.diagnostics, "a LoadError must say why"
        for diagnostic in exc.diagnostics:
            line = diagnostic.format()
            assert "\n" not in line and "\r" not in line, line
            assert "Traceback" not in line
            assert f": {diagnostic.severity}: " in line


def test_structure_mutations_load_or_report_one_line_diagnostics(
    documents: list[tuple[Path, str]], workdir: Path
) -> None:
    @FUZZ
    @given(case=mutated_structure(documents))
    def check(case: tuple[str, str]) -> None:
        _check_load(workdir, *case)

    check()


def test_text_mutations_load_or_report_one_line_diagnostics(
    documents: list[tuple[Path, str]], workdir: Path
) -> None:
    @FUZZ
    @given(case=mutated_text(documents))
    def check(case: tuple[str, str]) -> None:
        _check_load(workdir, *case)

    check()


def test_validate_exits_0_or_2_without_traceback(
    documents: list[tuple[Path, str]], workdir: Path
) -> None:
    @settings(FUZZ, max_examples=max(10, FUZZ.max_examples // 3))
    @given(case=st.one_of(mutated_structure(documents), mutated_text(documents)))
    def check(case: tuple[str, str]) -> None:
        name, text = case
        target = workdir / f"validate-{name}"
        target.write_text(text, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["validate", str(target)])
        printed = out.getvalue() + err.getvalue()
        assert code in (0, 2), printed
        assert "Traceback" not in printed
        for line in printed.rstrip("\n").split("\n"):
            assert line.startswith((str(target), "1 document", "0 documents")), line

    check()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00\x01\x02",
        "naftiko: [",
        "a: &a [*a]",  # a self-referencing alias
        "naftiko: 1.0.0-alpha2\ncapability: " + "[" * 5000 + "]" * 5000,
        "naftiko: 1.0.0-alpha2\ncapability:\n  exposes: 12\n  consumes: 'x'",
        "naftiko: 1.0.0-alpha2\nx: &x\n  - *x\n",
        "!!python/object/apply:os.system ['true']",
    ],
    ids=["empty", "binary", "unclosed", "alias-loop", "deep", "wrong-types", "self-alias", "tag"],
)
def test_hostile_documents(workdir: Path, text: str) -> None:
    """Parser-level abuse: each still ends as a LoadError or a loaded document."""
    _check_load(workdir, "hostile.yaml", text)


def _alias_bomb(levels: int) -> str:
    """``levels`` anchors, each a list of two aliases of the previous: 2**levels leaves."""
    lines = ["naftiko: 1.0.0-alpha2", "info: {label: bomb}", "capability: {}", "l0: &a0 [x, x]"]
    lines += [f"l{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [20, 30, 200])
def test_alias_expansion_bomb_is_refused(workdir: Path, levels: int) -> None:
    target = workdir / "bomb.yaml"
    target.write_text(_alias_bomb(levels))
    with pytest.raises(LoadError) as refused:
        load_capability(target, env={}, require_binds=False)
    assert any("alias" in d.message for d in refused.value.diagnostics)
