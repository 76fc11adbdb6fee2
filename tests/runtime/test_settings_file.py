"""``--settings FILE``: TOML or YAML tables read once; bad files are one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from naftiko.cli import main
from naftiko.runtime.settings_file import SettingsFileError, load_settings_file

TIKTOK = str(Path(__file__).resolve().parents[2] / "capabilities/tiktok-login-kit-oauth.yaml")


def test_toml_and_yaml_give_the_same_tables(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("[upstream.defaults]\nretries = 2\n[rate_limits]\n")
    yml = tmp_path / "s.yaml"
    yml.write_text("upstream:\n  defaults:\n    retries: 2\nrate_limits: {}\n")
    assert load_settings_file(toml) == load_settings_file(yml)
    assert load_settings_file(toml)["upstream"] == {"defaults": {"retries": 2}}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("s.toml", "[bogus]\nx = 1\n", "unknown table(s) 'bogus'"),
        ("s.yaml", "upstream:\n  a: [1\n", "s.yaml:3: not valid YAML"),
        ("s.toml", "upstream = 3\n", "'upstream' must be a table"),
        ("s.yaml", "- 1\n", "expected tables"),
    ],
)
def test_a_bad_file_is_refused_with_its_name(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SettingsFileError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_settings_file(path)


def test_the_cli_reports_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[bogus]\n")
    assert main(["run", TIKTOK, "--settings", str(path), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown table(s) 'bogus'" in err[0] and "Traceback" not in err[0]
    assert main(["run", TIKTOK, "--settings", str(tmp_path / "missing.toml"), "--check"]) == 2
