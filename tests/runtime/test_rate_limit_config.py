"""Rate limit configuration: ``--rate-limit``, ``NAFTIKO_RATE_LIMIT``, the settings file's
``rate_limits`` table and ``--redis``; bad values are one line, exit 2 (issue 21, part 3)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from naftiko.adapters.http.rate_limit import (
    RateLimitSpecError,
    RatePolicy,
    parse_entries,
    parse_policy,
    redacted_url,
)
from naftiko.cli import main
from naftiko.cli.run import add_arguments
from naftiko.runtime.config import ConfigError, RuntimeConfig, resolve_config

TIKTOK = str(Path(__file__).resolve().parents[2] / "capabilities/tiktok-login-kit-oauth.yaml")


def config(argv: list[str], env: dict[str, str] | None = None) -> RuntimeConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return resolve_config(parser.parse_args(["x.yaml", *argv]), env or {})


@pytest.mark.parametrize(
    ("text", "rate", "period", "burst"),
    [
        ("60/minute", 60, 60.0, 60),
        ("5/10s", 5, 10.0, 5),
        ("100/hour,burst=10", 100, 3600.0, 10),
        (" 2 / second , burst = 4 ", 2, 1.0, 4),
        ("1/day", 1, 86400.0, 1),
        ("3/1.5m", 3, 90.0, 3),
    ],
)
def test_policies_are_read(text: str, rate: int, period: float, burst: int) -> None:
    policy = parse_policy(text, "t")
    assert isinstance(policy, RatePolicy)
    assert (policy.rate, policy.period_s, policy.burst) == (rate, period, burst)


@pytest.mark.parametrize(
    "text", ["60", "x/minute", "0/minute", "5/fortnight", "5/0s", "5/s,burst=0", "5/s,size=3"]
)
def test_bad_policies_are_one_line(text: str) -> None:
    with pytest.raises(RateLimitSpecError) as info:
        parse_policy(text, "--rate-limit")
    assert "\n" not in str(info.value) and str(info.value).startswith("--rate-limit: ")


def test_off_by_default() -> None:
    cfg = config([])
    assert not cfg.rate_limits.enabled and cfg.rate_limits.redis_url is None


def test_entries_name_a_namespace_or_set_the_default() -> None:
    found = parse_entries(["10/s,burst=3", "ns-a=off", "ns-b=1/minute,burst=2"], "--rate-limit")
    assert found[None] == RatePolicy(10, 1.0, 3, "10/s,burst=3")
    assert found["ns-a"] is None
    assert found["ns-b"] == RatePolicy(1, 60.0, 2, "1/minute,burst=2")


def test_file_then_environment_then_flags_per_namespace(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(
        '[rate_limits.defaults]\nrate = "100/minute"\nburst = 5\n'
        '[rate_limits.a]\nrate = "1/s"\n'
        '[rate_limits.b]\nrate = "2/s"\n'
        '[rate_limits.c]\nrate = "off"\n'
    )
    env = {"NAFTIKO_RATE_LIMIT": "b=3/s; a=4/s", "NAFTIKO_REDIS_URL": "redis://r:6379/0"}
    cfg = config(["--settings", str(settings), "--rate-limit", "a=5/s"], env).rate_limits
    assert cfg.default == RatePolicy(100, 60.0, 5, "100/minute,burst=5")
    assert cfg.policy_for("a").rate == 5  # flag over environment over file
    assert cfg.policy_for("b").rate == 3  # environment over file
    assert cfg.policy_for("c") is None  # the file exempts it
    assert cfg.policy_for("other") == cfg.default
    assert cfg.redis_url == "redis://r:6379/0"
    flagged = config(["--redis", "rediss://s:1/2"], env).rate_limits
    assert flagged.redis_url == "rediss://s:1/2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[rate_limits.a]\nrate = "1/s"\nburts = 3\n', "rate_limits.a: unknown key(s) 'burts'"),
        ("[rate_limits.a]\nburst = 3\n", "rate_limits.a: 'rate' must be a string"),
        ('[rate_limits.a]\nrate = "1/x"\n', "rate_limits.a: '1/x': expected RATE/PERIOD"),
        ('[rate_limits.a]\nrate = "off"\nburst = 2\n', "rate_limits.a: 'burst' with rate"),
        ('[rate_limits]\na = "1/s"\n', "rate_limits.a: expected a table"),
        ('[rate_limits.a]\nrate = "1/s"\nburst = true\n', "burst must be a whole number"),
    ],
)
def test_the_settings_table_is_validated(tmp_path: Path, text: str, expected: str) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(text)
    with pytest.raises(ConfigError) as info:
        config(["--settings", str(settings)])
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(settings)) and expected in message


def test_the_cli_refuses_a_bad_limit_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", TIKTOK, "--rate-limit", "ten/minute", "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rate-limit" in err[0] and "Traceback" not in err[0]
    env_line = "NAFTIKO_RATE_LIMIT"
    with pytest.raises(ConfigError, match=env_line):
        config([], {"NAFTIKO_RATE_LIMIT": "5/s,burst=x"})


def test_a_redis_url_is_checked_and_never_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        config(["--redis", "http://user:hunter2@h:1"])
    assert "hunter2" not in str(info.value)
    assert redacted_url("redis://user:hunter2@h:6379/0") == "redis://***@h:6379/0"
    assert redacted_url("redis://:hunter2@[::1]:6379") == "redis://***@[::1]:6379"
    assert redacted_url("unix:///run/redis.sock") == "unix:///run/redis.sock"
