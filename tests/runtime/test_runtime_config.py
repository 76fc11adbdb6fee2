"""Where each knob of ``naftiko-run`` comes from: flags > NAFTIKO_* environment > document."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from naftiko.adapters.rest.plan import RestAdapterPlan
from naftiko.cli.run import add_arguments
from naftiko.runtime.config import ConfigError, default_host, in_container, resolve_config
from naftiko.runtime.placement import make_slot


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


NO_MARKER = Path("/nonexistent/.dockerenv")


def config(*argv: str, env: dict[str, str] | None = None, marker: Path = NO_MARKER):
    return resolve_config(parse("cap.yaml", *argv), env or {}, marker=marker)


def rest_plan(port: int = 8080, address: str | None = None) -> RestAdapterPlan:
    return RestAdapterPlan(
        type="rest",
        namespace="shop-rest",
        address=address,
        port=port,
        description=None,
        authentication=None,
    )


def test_flag_beats_environment_beats_document_for_ports() -> None:
    plan = rest_plan(port=8080)
    assert make_slot(plan, None, config()).plan.port == 8080  # document
    env = {"NAFTIKO_PORTS": "shop-rest=7000, other=1"}
    assert make_slot(plan, None, config(env=env)).plan.port == 7000  # environment
    flagged = config("--port", "shop-rest=0", env=env)
    assert make_slot(plan, None, flagged).plan.port == 0  # flag
    assert flagged.ports == {"shop-rest": 0, "other": 1}  # maps merge per namespace


def test_flag_beats_environment_beats_document_for_host() -> None:
    plan = rest_plan(address="10.1.2.3")
    assert make_slot(plan, None, config()).host == "10.1.2.3"
    env = {"NAFTIKO_HOST": "127.0.0.2"}
    assert make_slot(plan, None, config(env=env)).host == "127.0.0.2"
    assert make_slot(plan, None, config("--host", "::1", env=env)).host == "::1"
    assert make_slot(rest_plan(), None, config()).host == "127.0.0.1"  # default


def test_base_uris_reach_engine_settings() -> None:
    env = {"NAFTIKO_BASE_URIS": "tiktok=http://env.test,other=https://o.test"}
    settings = config("--base-uri", "tiktok=http://flag.test", env=env).engine_settings()
    assert settings.base_uri_overrides == {"tiktok": "http://flag.test", "other": "https://o.test"}


def test_scalar_knobs_from_environment_and_flags() -> None:
    env = {
        "NAFTIKO_LOG_FORMAT": "json",
        "NAFTIKO_LOG_LEVEL": "DEBUG",
        "NAFTIKO_TIMEOUT": "2.5",
        "NAFTIKO_MAX_BODY_BYTES": "100",
        "NAFTIKO_MCP_STATEFUL": "true",
        "NAFTIKO_ALLOWED_HOSTS": "a.example, b.example",
        "NAFTIKO_GRACE_PERIOD": "3",
        "NAFTIKO_CONTROL_PORT": "9999",
    }
    from_env = config(env=env)
    assert from_env.log_format == "json" and from_env.log_level == "debug"
    assert from_env.control_port == 9999 and from_env.grace_period_s == 3.0
    assert from_env.engine_settings().read_timeout_s == 2.5
    adapter = from_env.adapter_settings()
    assert adapter.max_body_bytes == 100 and adapter.mcp_stateless is False
    assert adapter.allowed_hosts == ("a.example", "b.example")

    flagged = config(
        "--log-format",
        "text",
        "--timeout",
        "9",
        "--grace-period",
        "0",
        "--allowed-host",
        "c.example",
        "--control-port",
        "1234",
        env=env,
    )
    assert flagged.log_format == "text" and flagged.grace_period_s == 0.0
    assert flagged.engine_settings().read_timeout_s == 9.0
    assert flagged.adapter_settings().allowed_hosts == ("c.example",)
    assert flagged.control_port == 1234


def test_defaults() -> None:
    cfg = config()
    assert cfg.grace_period_s == 20.0 and cfg.log_format == "text" and not cfg.reload
    assert cfg.adapter_settings().mcp_stateless is True
    assert cfg.control_port is None and cfg.host is None


def test_listener_limits_from_defaults_environment_and_flags() -> None:
    limits = config().listener_limits()
    assert (
        limits.max_header_bytes,
        limits.header_timeout_s,
        limits.idle_timeout_s,
        limits.keep_alive_timeout_s,
        limits.max_connections,
    ) == (32 * 1024, 10.0, 5.0, 20.0, 1000)
    env = {
        "NAFTIKO_MAX_HEADER_BYTES": "4096",
        "NAFTIKO_HEADER_TIMEOUT": "2.5",
        "NAFTIKO_IDLE_TIMEOUT": "7",
        "NAFTIKO_KEEP_ALIVE_TIMEOUT": "30",
        "NAFTIKO_MAX_CONNECTIONS": "50",
    }
    limits = config(env=env).listener_limits()
    assert (
        limits.max_header_bytes,
        limits.header_timeout_s,
        limits.idle_timeout_s,
        limits.keep_alive_timeout_s,
        limits.max_connections,
    ) == (4096, 2.5, 7.0, 30.0, 50)
    flagged = config(
        "--max-header-bytes",
        "100",
        "--header-timeout",
        "1",
        "--idle-timeout",
        "0.5",
        "--keep-alive-timeout",
        "9",
        "--max-connections",
        "3",
        env=env,
    )
    limits = flagged.listener_limits()
    assert (
        limits.max_header_bytes,
        limits.header_timeout_s,
        limits.idle_timeout_s,
        limits.keep_alive_timeout_s,
        limits.max_connections,
    ) == (100, 1.0, 0.5, 9.0, 3)


@pytest.mark.parametrize(
    "argv",
    [
        ("--max-header-bytes", "0"),
        ("--max-connections", "-1"),
        ("--header-timeout", "soon"),
        ("--idle-timeout", "0"),
        ("--keep-alive-timeout", "-2"),
        ("--allowed-origin", "http://app.example/path"),
        ("--allowed-origin", "app.example"),
        ("--allowed-host", "a b"),
    ],
)
def test_bad_listener_values_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError):
        config(*argv)


def test_host_and_origin_lists() -> None:
    # Without --allowed-host: loopback names only on a loopback listener, else any host.
    assert config().adapter_settings("127.0.0.1").allowed_hosts == ()
    assert config().adapter_settings("::1").allowed_hosts == ()
    assert config().adapter_settings("0.0.0.0").allowed_hosts == ("*",)
    listed = config("--allowed-host", "gw", "--allowed-origin", "HTTPS://App.Example")
    assert listed.adapter_settings("127.0.0.1").allowed_hosts == ("gw",)
    assert listed.adapter_settings().allowed_origins == ("https://app.example:443",)
    env = {"NAFTIKO_ALLOWED_ORIGINS": "http://a.example:8080, *"}
    assert config(env=env).allowed_origins == ("http://a.example:8080", "*")


def test_container_detection(tmp_path: Path) -> None:
    marker = tmp_path / ".dockerenv"
    assert default_host({}, marker) == "127.0.0.1"
    assert default_host({"NAFTIKO_IN_CONTAINER": "1"}, marker) == "0.0.0.0"
    marker.touch()
    assert in_container({}, marker)
    assert default_host({}, marker) == "0.0.0.0"
    assert default_host({"NAFTIKO_IN_CONTAINER": "0"}, marker) == "127.0.0.1"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (("--port", "shop"), {}, "NAMESPACE=VALUE"),
        (("--port", "shop=http"), {}, "not a port"),
        (("--port", "shop=70000"), {}, "outside"),
        ((), {"NAFTIKO_PORTS": "a=1,b"}, "NAMESPACE=VALUE"),
        (("--base-uri", "ns=ftp://x"), {}, "not an http"),
        (("--timeout", "-1"), {}, "timeout"),
        ((), {"NAFTIKO_LOG_FORMAT": "xml"}, "log format"),
        ((), {"NAFTIKO_MCP_STATEFUL": "maybe"}, "boolean"),
        (("--control-port", "x"), {}, "control port"),
    ],
)
def test_bad_values_are_config_errors(
    argv: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config(*argv, env=env)


def test_paths_from_environment_when_none_given() -> None:
    cfg = resolve_config(parse(), {"NAFTIKO_CAPABILITIES": "/a.yaml:/caps"}, marker=NO_MARKER)
    assert cfg.paths == ("/a.yaml", "/caps")
