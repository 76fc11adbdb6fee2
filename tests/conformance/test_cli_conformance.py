"""``naftiko-run`` as a newcomer meets it: ``--check``, override typos, ``--help``.

In process through :func:`naftiko.cli.entry.main` (the same code as the console script);
``--check`` and the refusals below stop before any socket is opened.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from naftiko.cli.entry import main

CAPABILITIES = Path(__file__).parent / "capabilities"
STUBS = CAPABILITIES / "stubs.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def no_naftiko_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's NAFTIKO_* variables must not leak into these runs."""
    import os

    for name in [n for n in os.environ if n.startswith("NAFTIKO_")]:
        monkeypatch.delenv(name)


def test_units_that_answer_501_are_named_at_load_and_counted_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, str(STUBS), "--check", "--host", "127.0.0.1")
    assert code == 0, err
    warnings = [line for line in out.splitlines() if ": warning: " in line]
    for unit in ("stubs-rest.create-thing", "stubs-rest.delete-thing", "stubs-mcp.stub-tool"):
        (line,) = [w for w in warnings if f"'{unit}'" in w]
        assert "answers 501" in line and "no call, steps or output values" in line
    assert not [w for w in warnings if "list-things" in w]
    assert "  rest stubs-rest http://127.0.0.1:0: 1 served, 2 answer 501" in out
    assert "    POST /things (answers 501)" in out
    assert "    GET /things\n" in out
    assert "  mcp stubs-mcp http://127.0.0.1:0/mcp: 0 served, 1 answer 501" in out
    assert "    tool stub-tool (answers 501)" in out


def test_strict_refuses_units_that_would_answer_501(capsys: pytest.CaptureFixture[str]) -> None:
    from naftiko.adapters.exposes import compile_capability
    from naftiko.spec.diagnostics import LoadError
    from naftiko.spec.loader import load_capability

    with pytest.raises(LoadError) as caught:
        compile_capability(load_capability(STUBS), strict=True)
    assert "'stubs-mcp.stub-tool' answers 501" in str(caught.value)


@pytest.mark.parametrize(
    ("flags", "env", "origin", "typo", "meant"),
    [
        (["--port", "stubs-rset=0"], {}, "--port", "stubs-rset", "stubs-rest"),
        ([], {"NAFTIKO_PORTS": "stubs-mpc=0"}, "--port", "stubs-mpc", "stubs-mcp"),
        (
            ["--base-uri", "stub-upstraem=http://127.0.0.1:1"],
            {},
            "--base-uri",
            "stub-upstraem",
            "stub-upstream",
        ),
        (
            [],
            {"NAFTIKO_BASE_URIS": "stub_upstream=http://127.0.0.1:1"},
            "--base-uri",
            "stub_upstream",
            "stub-upstream",
        ),
    ],
)
def test_a_mistyped_override_namespace_is_refused_with_the_closest_one(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    env: dict[str, str],
    origin: str,
    typo: str,
    meant: str,
) -> None:
    """Never a warning and a run that keeps calling the document's (production) upstream."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for extra in (["--check"], []):  # a real run stops before opening any socket
        code, out, err = run(capsys, str(STUBS), "--host", "127.0.0.1", *flags, *extra)
        assert code == 2, (out, err)
        assert f"{origin} {typo}:" in err and f"did you mean '{meant}'?" in err
        assert "Traceback" not in err and "ready" not in out


REST_MARKUP = ("``", ":func:", ":class:", ":mod:", ".. ")


@pytest.mark.parametrize(
    "argv", [["--help"], ["run", "--help"], ["validate", "--help"], ["export", "--help"]]
)
def test_help_is_plain_text(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: naftiko")
    assert not [m for m in REST_MARKUP if m in text], text


def test_the_readme_says_where_the_openapi_document_is_served() -> None:
    from naftiko.adapters.rest.routes import OPENAPI_PATH

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"`{OPENAPI_PATH}`" in readme
