"""Upstream resilience settings: the settings file's ``upstream`` table, then
``NAFTIKO_UPSTREAM``, then ``--upstream``; a bad key or value is one clear line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from naftiko.cli.run import add_arguments
from naftiko.runtime.config import ConfigError, resolve_config
from naftiko.upstream.resilience import ResiliencePolicy, is_retry_safe

NO_MARKER = Path("/nonexistent/.dockerenv")


def config(*argv: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["cap.yaml", *argv])
    return resolve_config(args, env or {}, marker=NO_MARKER)


def test_the_defaults_are_the_documented_ones() -> None:
    policy = config().engine_settings().resilience.policy("anything")
    assert policy == ResiliencePolicy()
    assert (policy.retries, policy.breaker_failures, policy.breaker_failure_ratio) == (2, 5, 0.5)
    assert (policy.breaker_min_calls, policy.breaker_window_s, policy.breaker_open_s) == (
        20,
        30.0,
        30.0,
    )
    assert (policy.max_concurrent, policy.queue_wait_s) == (100, 1.0)


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text(
        "[upstream.defaults]\nretries = 4\nmax_concurrent = 10\n"
        "[upstream.stripe]\nbreaker_open = 5\nretries = 1\n"
    )
    cfg = config(
        "--settings",
        str(settings),
        "--upstream",
        "stripe.breaker_open=7",
        "--upstream",
        "queue_wait=0.5",
        env={"NAFTIKO_UPSTREAM": "stripe.breaker_open=6,max_concurrent=20,github.retries=0"},
    )
    resilience = cfg.engine_settings().resilience
    stripe, github, other = (resilience.policy(ns) for ns in ("stripe", "github", "other"))
    assert (stripe.breaker_open_s, stripe.retries, stripe.max_concurrent) == (7.0, 1, 20)
    assert stripe.queue_wait_s == 0.5
    # A namespace's own setting wins over every default, whichever layer gave it.
    assert (github.retries, github.max_concurrent, github.queue_wait_s) == (0, 20, 0.5)
    assert (other.retries, other.max_concurrent, other.breaker_open_s) == (4, 20, 30.0)


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (("--upstream", "stripe.retry=2"), {}, "--upstream.stripe: unknown setting 'retry'"),
        (("--upstream", "retries=-1"), {}, "--upstream.defaults.retries: must be an integer >= 0"),
        (("--upstream", "retries"), {}, "--upstream: expected [NAMESPACE.]SETTING=VALUE"),
        ((), {"NAFTIKO_UPSTREAM": "a.breaker_failure_ratio=2"}, "must be a number from 0 to 1"),
        (("--upstream", "backoff_max=0.01"), {}, "backoff_max (0.01) is below backoff_base"),
    ],
)
def test_bad_values_are_one_line(argv: tuple[str, ...], env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(*argv, env=env)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_settings_table_names_the_file(tmp_path: Path) -> None:
    settings = tmp_path / "s.yaml"
    settings.write_text("upstream:\n  stripe:\n    breaker_open: soon\n")
    with pytest.raises(ConfigError, match=r"s.yaml: upstream.stripe.breaker_open: must be"):
        config("--settings", str(settings))
    settings.write_text("upstream:\n  stripe: 3\n")
    with pytest.raises(ConfigError, match=r"upstream.stripe: must be a table of settings"):
        config("--settings", str(settings))


@pytest.mark.parametrize(
    ("method", "hints", "safe"),
    [
        ("GET", {}, True),
        ("put", {}, True),
        ("DELETE", {}, True),
        ("POST", {}, False),
        ("PATCH", {}, False),
        ("POST", {"idempotent": True}, True),
        ("POST", {"read_only": True}, True),
        ("GET", {"idempotent": False}, False),  # the author's word wins
    ],
)
def test_what_may_be_retried(method: str, hints: dict[str, bool], safe: bool) -> None:
    assert is_retry_safe(method, hints) is safe
