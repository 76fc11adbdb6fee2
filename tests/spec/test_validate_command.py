"""``naftiko validate``: one line per problem, a summary, exit 0 or 2, never a traceback."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from test_loader_tolerance import base_doc, write

from naftiko.cli import entry as cli
from naftiko.cli.validate import validate_file
from naftiko.spec.loader import load_source
from naftiko.spec.source import read_source

ROOT = Path(__file__).resolve().parents[2]
TIKTOK = ROOT / "capabilities" / "tiktok-login-kit-oauth.yaml"
CORPUS = ROOT / ".." / "shared" / "corpus"
LINE = re.compile(r"^.+:\d+:\d+: (error|warning): .+$")


@pytest.fixture(autouse=True)
def only_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other commands' modules are built in parallel; the dispatcher imports them all."""
    monkeypatch.setattr(cli, "COMMANDS", {"validate": cli.COMMANDS["validate"]})


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = cli.main(["validate", *args])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).splitlines()


def test_tiktok_validates_with_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(capsys, str(TIKTOK))
    assert code == 0
    assert lines[-1] == "1 document: 0 ok, 1 with warnings, 0 failed"
    assert any(": warning: " in line and "TIKTOK_FOR_DEVELOPERS_API_KEY" in line for line in lines)
    assert all(LINE.match(line) for line in lines[:-1])


def test_tiktok_strict_lists_schema_deviations_with_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines = validate(capsys, "--strict", "--quiet", str(TIKTOK))
    assert code == 2
    schema = [line for line in lines if ": error: schema: " in line]
    assert len(schema) >= 4
    assert all(LINE.match(line) for line in schema)
    assert any(
        ":34:11: error: schema: properties not allowed here: description, required, type "
        "(at capability.consumes[0].resources[0].operations[0].inputParameters[0])" in line
        for line in schema
    )
    assert not any(": warning: " in line for line in lines)
    assert lines[-1] == "1 document: 0 ok, 0 with warnings, 1 failed"


def test_directory_summary_counts_and_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, base_doc(), "ok.yaml")
    write(tmp_path, {"naftiko": "1.0.0-alpha2", "consumes": []}, "shared.yaml")
    write(tmp_path, {"name": "package"}, "package.json")
    doc = base_doc()
    doc["naftiko"] = "1.0.0-alpha3"
    write(tmp_path, doc, "old.yml")
    (tmp_path / "broken.yaml").write_text("naftiko: [\n")
    (tmp_path / "empty.yaml").write_text("")
    code, lines = validate(capsys, str(tmp_path))
    assert code == 2
    assert lines[-1] == "4 documents: 1 ok, 1 with warnings, 2 failed, 2 skipped"
    assert any("broken.yaml:2:1: error: YAML syntax error" in line for line in lines)


def test_quiet_prints_errors_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = base_doc()
    doc["naftiko"] = "1.0.0-alpha3"
    code, lines = validate(capsys, "--quiet", str(write(tmp_path, doc)))
    assert code == 0 and lines == ["1 document: 0 ok, 1 with warnings, 0 failed"]


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00" * 100, b"- 1\n", b"{{{{", b"naftiko: {\n", b"\t\tnaftiko:\n\t- x"],
)
def test_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    code, lines = validate(capsys, str(path))
    assert code == 2
    assert not any("Traceback" in line for line in lines)


def test_big_garbage_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(os.urandom(10 * 1024 * 1024))
    code, lines = validate(capsys, str(path))
    assert code == 2 and len(lines) == 2


def test_a_script_step_fails_validation_with_its_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine refuses script steps at load; validate runs the same compilation."""
    script = CORPUS / "naftiko-framework-examples" / "script-step.yml"
    if not script.is_file():
        pytest.skip("shared corpus not checked out beside the repo")
    code, lines = validate(capsys, str(script))
    assert code == 2
    errors = [line for line in lines if ": error: " in line]
    assert [e.split(": error: ")[0].rsplit(":", 2)[1:] for e in errors] == [
        ["53", "15"],
        ["86", "15"],
    ]
    assert "step 'filter-active': script steps are not supported by this runtime" in errors[0]
    assert errors[0].endswith("(at capability.exposes[1].tools[0].steps[1])")
    assert lines[-1] == "1 document: 0 ok, 0 with warnings, 1 failed"


def corpus_file(*parts: str) -> Path:
    path = CORPUS.joinpath(*parts)
    if not path.is_file():
        pytest.skip("shared corpus not checked out beside the repo")
    return path


def test_an_unsupported_consumed_authentication_is_a_warning_naming_the_501s(
    capsys: pytest.CaptureFixture[str],
) -> None:
    oauth1 = corpus_file(
        "api-evangelist-mastercard", "capabilities", "bill-payments-and-commercial.yaml"
    )
    code, lines = validate(capsys, str(oauth1))
    assert code == 0 and lines[-1] == "1 document: 0 ok, 1 with warnings, 0 failed"
    assert any(
        ":25:5: warning: operations of namespace 'bill-pay' answer 501: authentication type "
        "'oauth1' is not supported" in line
        for line in lines
    )


def test_strict_turns_a_confined_problem_into_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The protobuf document is schema-valid: only the engine's strict rule fails it."""
    proto = corpus_file("naftiko-framework-tests", "formats", "proto-capability.yaml")
    code, lines = validate(capsys, str(proto))
    assert code == 0
    assert any(":61:15: warning: units that read the body of" in line for line in lines)
    code, lines = validate(capsys, "--strict", str(proto))
    assert code == 2 and lines[-1] == "1 document: 0 ok, 0 with warnings, 1 failed"
    [error] = [line for line in lines if ": error: " in line]
    assert ":61:15: error: " in error and "'protobuf' is not supported" in error


def test_missing_path_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = validate(capsys, str(tmp_path / "nope.yaml"))
    assert code == 2 and "file not found" in lines[0]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not checked out beside the repo")
def test_corpus_loads() -> None:
    """Ratios over the published corpus (figures in the issue report)."""
    statuses: dict[str, int] = {}
    reasons: dict[str, int] = {}
    started = time.perf_counter()
    for path in sorted(CORPUS.rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        status, diagnostics = validate_file(path)
        statuses[status] = statuses.get(status, 0) + 1
        if status == "failed":
            errors = [d.message for d in diagnostics if d.severity == "error"]
            reason = _engine_reason(errors) if _loads(path) else _reason(errors)
            reasons[reason] = reasons.get(reason, 0) + 1
    elapsed = time.perf_counter() - started
    parsed = statuses.get("ok", 0) + statuses.get("warnings", 0)
    failed = statuses.get("failed", 0)
    # every failure is one of the explained kinds (see the report): none is ours. A
    # problem confined to some units (oauth1, a transform step, protobuf...) is a warning
    # and 501 for those units, so the engine refuses a whole document only for a script
    # step; anything else it refuses shows up here with its message.
    assert set(reasons) <= {
        "script-step",  # loads, but the engine refuses it in every mode (decision)
        "yaml-syntax",
        "import-file-absent",
        "not-a-capability-shape",
        "openapi-import",
    }, reasons
    assert reasons.get("script-step", 0) <= 2, reasons
    not_ours = reasons.get("yaml-syntax", 0) + reasons.get("import-file-absent", 0)
    assert parsed / (parsed + failed - not_ours) >= 0.99
    assert parsed / (parsed + failed - reasons.get("yaml-syntax", 0)) >= 0.97
    print(f"corpus: {statuses} {reasons} in {elapsed:.1f}s")


def _loads(path: Path) -> bool:
    """Whether the loader alone accepts ``path`` (validate also runs the compiler)."""
    try:
        load_source(path, read_source(path, str(path)), require_binds=False)
    except Exception:
        return False
    return True


def _engine_reason(errors: list[str]) -> str:
    """Why the engine refused a document the loader accepts."""
    if errors and all("script steps are not supported" in e for e in errors):
        return "script-step"
    return f"refused-by-engine: {errors[0] if errors else '?'}"


def _reason(errors: list[str]) -> str:
    if any(e.startswith("YAML syntax error") for e in errors):
        return "yaml-syntax"
    if errors and all("file not found" in e and "cannot import" in e for e in errors):
        return "import-file-absent"
    if any("no 'capability' block" in e for e in errors):
        return "not-a-capability-shape"
    if any("OpenAPI description" in e for e in errors):
        return "openapi-import"
    return errors[0] if errors else "?"
