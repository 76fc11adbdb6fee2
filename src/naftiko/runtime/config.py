"""Process configuration: command-line flags, then ``NAFTIKO_*`` environment, then the document.

One place decides where each knob comes from, so the precedence rule (flags beat the
environment, which beats what the capability documents declare, which beats our
defaults) is written once and tested once. Nothing here touches the network or a file
other than the container marker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from naftiko.adapters.http.origin import is_loopback, normalize_origin, split_host
from naftiko.adapters.http.rate_limit import (
    RateLimitConfig,
    RateLimitSpecError,
    config_of,
    parse_entries,
    parse_table,
)
from naftiko.adapters.http.settings import AdapterSettings
from naftiko.errors import LoadTimeError
from naftiko.runtime.http_protocol import (
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
    ListenerLimits,
)
from naftiko.runtime.settings_file import SettingsFileError, load_settings_file
from naftiko.upstream.resilience import ResilienceSettings, pairs_table, resilience_settings
from naftiko.upstream.settings import UpstreamSettings

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = ("text", "json")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
DEFAULT_GRACE_PERIOD_S = 20.0
CONTAINER_MARKER = Path("/.dockerenv")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError, LoadTimeError):
    """A flag or environment value that cannot be used; reported as one line, exit 2."""


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Everything the process needs that is not in a capability document.

    ``host`` is ``None`` when neither ``--host`` nor ``NAFTIKO_HOST`` was given: each
    adapter then binds to its document ``address``, else to ``default_host``.
    """

    paths: tuple[str, ...]
    host: str | None = None
    default_host: str = "127.0.0.1"
    ports: Mapping[str, int] = field(default_factory=dict)
    base_uris: Mapping[str, str] = field(default_factory=dict)
    control_port: int | None = None
    log_format: LogFormat = "text"
    log_level: str = "info"
    timeout_s: float | None = None
    max_body_bytes: int | None = None
    mcp_stateful: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    keep_alive_timeout_s: float = DEFAULT_KEEP_ALIVE_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S
    check: bool = False
    reload: bool = False
    reload_interval_s: float = 1.0
    # ``--stdio [NS]``: that MCP adapter ("" = the only one) on stdin/stdout (flag only).
    stdio: str | None = None
    # ``--gateway PORT``: every adapter of every document on this one port, under a prefix
    # (``naftiko.runtime.gateway``); ``prefixes`` are ``--prefix [FILE:]NS=OTHER``.
    gateway_port: int | None = None
    prefixes: Mapping[str, str] = field(default_factory=dict)
    # ``--settings FILE``: its top-level tables by name (``naftiko.runtime.settings_file``).
    settings: Mapping[str, Any] = field(default_factory=dict)
    # ``--workers N``: processes sharing every listener (``naftiko.runtime.workers``).
    workers: int = 1
    # ``--rate-limit``, ``NAFTIKO_RATE_LIMIT``, the settings file's ``rate_limits`` and
    # ``--redis``/``NAFTIKO_REDIS_URL`` (``naftiko.adapters.http.rate_limit``); off by default.
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    # Upstream resilience: the settings file's ``upstream`` table, ``NAFTIKO_UPSTREAM``,
    # then ``--upstream [NS.]KEY=VALUE`` (``naftiko.upstream.resilience``).
    resilience: ResilienceSettings = field(default_factory=ResilienceSettings)

    def bind_host(self, document_address: str | None) -> str:
        """Flag/env host, else the document's ``address``, else the default."""
        return self.host or document_address or self.default_host

    def engine_settings(self) -> UpstreamSettings:
        settings = UpstreamSettings(
            base_uri_overrides=dict(self.base_uris), resilience=self.resilience
        )
        if self.timeout_s is not None:
            settings = replace(
                settings,
                read_timeout_s=self.timeout_s,
                connect_timeout_s=min(settings.connect_timeout_s, self.timeout_s),
                # a longer read timeout must not be cut short by the total deadline
                total_timeout_s=max(settings.total_timeout_s, 2 * self.timeout_s),
            )
        return settings

    def adapter_settings(self, bind_host: str | None = None) -> AdapterSettings:
        """The adapters' knobs for a listener bound to ``bind_host``.

        Without ``--allowed-host``, a loopback listener answers loopback Host names only
        (a rebound page sends its own name; nothing remote can reach loopback anyway) and
        any other listener any Host (a container is reached by names it cannot know).
        """
        kwargs: dict[str, Any] = {
            "mcp_stateless": not self.mcp_stateful,
            "allowed_origins": self.allowed_origins,
        }
        if self.max_body_bytes is not None:
            kwargs["max_body_bytes"] = self.max_body_bytes
        if self.allowed_hosts:
            kwargs["allowed_hosts"] = self.allowed_hosts
        elif bind_host is not None and is_loopback(bind_host):
            kwargs["allowed_hosts"] = ()
        return AdapterSettings(**kwargs)

    def listener_limits(self) -> ListenerLimits:
        """What every listener (REST, MCP, skill, control) allows before a request."""
        return ListenerLimits(
            max_header_bytes=self.max_header_bytes,
            header_timeout_s=self.header_timeout_s,
            idle_timeout_s=self.idle_timeout_s,
            keep_alive_timeout_s=self.keep_alive_timeout_s,
            max_connections=self.max_connections,
        )


def in_container(env: Mapping[str, str], marker: Path = CONTAINER_MARKER) -> bool:
    """``NAFTIKO_IN_CONTAINER=1`` (set by our Dockerfile) or Docker's ``/.dockerenv``."""
    flag = env.get("NAFTIKO_IN_CONTAINER", "").strip().lower()
    if flag in TRUE_WORDS:
        return True
    if flag and flag in FALSE_WORDS:
        return False
    return marker.exists()


def default_host(env: Mapping[str, str], marker: Path = CONTAINER_MARKER) -> str:
    """All interfaces inside a container (else nothing outside can reach it), loopback
    elsewhere (a laptop should not expose upstream credentials to its network)."""
    return "0.0.0.0" if in_container(env, marker) else "127.0.0.1"


def parse_port(text: str, what: str) -> int:
    try:
        port = int(text.strip())
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what}: {port} is outside 0-65535")
    return port


def parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``["ns=value", ...]`` (or one comma-separated string split beforehand) to a dict."""
    pairs: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{what}: expected NAMESPACE=VALUE, got {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _split_list(text: str) -> list[str]:
    return [part for part in (p.strip() for p in text.split(",")) if part]


def _port_map(items: Sequence[str], what: str) -> dict[str, int]:
    return {ns: parse_port(v, f"{what} {ns}") for ns, v in parse_pairs(items, what).items()}


def _uri_map(items: Sequence[str], what: str) -> dict[str, str]:
    uris = parse_pairs(items, what)
    for ns, uri in uris.items():
        if not uri.startswith(("http://", "https://")):
            raise ConfigError(f"{what} {ns}: {uri!r} is not an http(s) URL")
    return uris


def _bool(text: str, what: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{what}: {text!r} is not a boolean (use 1/0, true/false)")


def _positive_float(text: str, what: str, *, allow_zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{what}: must be {'>= 0' if allow_zero else '> 0'}, got {text}")
    return value


def _positive_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not an integer") from None
    if value <= 0:
        raise ConfigError(f"{what}: must be > 0, got {text}")
    return value


def _origin(text: str, what: str) -> str:
    try:
        return normalize_origin(text)
    except ValueError:
        raise ConfigError(
            f"{what}: {text!r} is not an origin (scheme://host[:port], or *)"
        ) from None


def _host(text: str, what: str) -> str:
    text = text.strip()
    if text != "*":
        try:
            split_host(text)
        except ValueError:
            raise ConfigError(f"{what}: {text!r} is not a host (name, name:port, or *)") from None
    return text


def _choice(text: str, choices: Sequence[str], what: str) -> str:
    word = text.strip().lower()
    if word not in choices:
        raise ConfigError(f"{what}: {text!r} is not one of {', '.join(choices)}")
    return word


def _settings(path: str) -> Mapping[str, Any]:
    try:
        return load_settings_file(path)
    except SettingsFileError as exc:
        raise ConfigError(str(exc)) from None


REDIS_SCHEMES = ("redis", "rediss", "unix")


def _rate_limits(
    args: Any, env: Mapping[str, str], settings: Mapping[str, Any], settings_path: str | None
) -> RateLimitConfig:
    """File, then environment, then flags, per namespace; the Redis URL checked here."""
    try:
        layers = [parse_table(settings.get("rate_limits") or {}, str(settings_path))]
        # Entries in the variable are separated by ';' or spaces (',' belongs to burst=N).
        text = env.get("NAFTIKO_RATE_LIMIT", "").replace(";", " ")
        layers.append(parse_entries(text.split(), "NAFTIKO_RATE_LIMIT"))
        layers.append(parse_entries(getattr(args, "rate_limit", None) or [], "--rate-limit"))
    except RateLimitSpecError as exc:
        raise ConfigError(str(exc)) from None
    redis_url = getattr(args, "redis", None) or env.get("NAFTIKO_REDIS_URL") or None
    if redis_url is not None:
        scheme = redis_url.partition("://")[0].lower() if "://" in redis_url else ""
        if scheme not in REDIS_SCHEMES:
            # The URL may hold a password: never repeat it.
            raise ConfigError(
                f"--redis/NAFTIKO_REDIS_URL: expected a {', '.join(REDIS_SCHEMES)} URL"
            )
    return config_of(layers, redis_url)


def _resilience(path: Any, tables: Mapping[str, Any], env_value: str, args: Any) -> Any:
    """The resilience policies: the settings file's ``upstream`` table, then
    ``NAFTIKO_UPSTREAM`` (comma-separated), then each ``--upstream``."""
    try:
        return resilience_settings(
            [
                (f"{path}: upstream", tables.get("upstream")),
                ("NAFTIKO_UPSTREAM", pairs_table(_split_list(env_value), "NAFTIKO_UPSTREAM")),
                ("--upstream", pairs_table(getattr(args, "upstream", None) or [], "--upstream")),
            ]
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def resolve_config(
    args: Any, env: Mapping[str, str], *, marker: Path = CONTAINER_MARKER
) -> RuntimeConfig:
    """Merge parsed flags (``None`` when not given) over ``NAFTIKO_*`` variables.

    Maps (ports, base URIs) merge per namespace: a flag for one namespace does not
    discard the environment's value for another.
    """

    def pick(flag: Any, name: str) -> Any:
        if flag is not None:
            return flag
        value = env.get(name)
        return value if value not in (None, "") else None

    paths = tuple(args.paths or ())
    if not paths and env.get("NAFTIKO_CAPABILITIES"):
        paths = tuple(p for p in env["NAFTIKO_CAPABILITIES"].split(os.pathsep) if p)

    ports = _port_map(_split_list(env.get("NAFTIKO_PORTS", "")), "NAFTIKO_PORTS")
    ports.update(_port_map(args.port or [], "--port"))
    base_uris = _uri_map(_split_list(env.get("NAFTIKO_BASE_URIS", "")), "NAFTIKO_BASE_URIS")
    base_uris.update(_uri_map(args.base_uri or [], "--base-uri"))

    control = pick(args.control_port, "NAFTIKO_CONTROL_PORT")
    gateway = pick(getattr(args, "gateway", None), "NAFTIKO_GATEWAY_PORT")
    prefixes = parse_pairs(_split_list(env.get("NAFTIKO_PREFIXES", "")), "NAFTIKO_PREFIXES")
    prefixes.update(parse_pairs(getattr(args, "prefix", None) or [], "--prefix"))
    log_format = _choice(
        str(pick(args.log_format, "NAFTIKO_LOG_FORMAT") or "text"), LOG_FORMATS, "log format"
    )
    log_level = _choice(
        str(pick(args.log_level, "NAFTIKO_LOG_LEVEL") or "info"), LOG_LEVELS, "log level"
    )
    timeout = pick(args.timeout, "NAFTIKO_TIMEOUT")
    max_body = pick(args.max_body_bytes, "NAFTIKO_MAX_BODY_BYTES")
    grace = pick(args.grace_period, "NAFTIKO_GRACE_PERIOD")
    allowed = list(args.allowed_host or []) or _split_list(env.get("NAFTIKO_ALLOWED_HOSTS", ""))
    origins = list(args.allowed_origin or []) or _split_list(env.get("NAFTIKO_ALLOWED_ORIGINS", ""))

    def limit(
        flag: Any, name: str, default: Any, parse: Callable[[str, str], Any], what: str
    ) -> Any:
        """A listener limit: the flag, else ``name`` in the environment, else ``default``."""
        value = pick(flag, name)
        return default if value is None else parse(str(value), what)

    def flag_or_env_bool(flag: bool | None, name: str) -> bool:
        if flag:
            return True
        return _bool(env[name], name) if env.get(name) else False

    settings_path = pick(getattr(args, "settings", None), "NAFTIKO_SETTINGS")
    settings = {} if settings_path is None else _settings(str(settings_path))
    workers = limit(getattr(args, "workers", None), "NAFTIKO_WORKERS", 1, _positive_int, "workers")
    if workers > 1 and getattr(args, "stdio", None) is not None:
        raise ConfigError(
            f"--stdio serves one MCP client on this process's stdin/stdout and cannot be "
            f"shared by {workers} workers; drop --workers (or NAFTIKO_WORKERS) or set it to 1"
        )
    resilience = _resilience(settings_path, settings, env.get("NAFTIKO_UPSTREAM", ""), args)

    return RuntimeConfig(
        paths=paths,
        host=pick(args.host, "NAFTIKO_HOST"),
        default_host=default_host(env, marker),
        ports=ports,
        base_uris=base_uris,
        control_port=None if control is None else parse_port(str(control), "control port"),
        log_format=log_format,  # type: ignore[arg-type]
        log_level=log_level,
        timeout_s=None if timeout is None else _positive_float(str(timeout), "timeout"),
        max_body_bytes=None if max_body is None else _positive_int(str(max_body), "max body"),
        mcp_stateful=flag_or_env_bool(args.mcp_stateful, "NAFTIKO_MCP_STATEFUL"),
        allowed_hosts=tuple(_host(h, "allowed host") for h in allowed),
        allowed_origins=tuple(_origin(o, "allowed origin") for o in origins),
        max_header_bytes=limit(
            args.max_header_bytes,
            "NAFTIKO_MAX_HEADER_BYTES",
            DEFAULT_MAX_HEADER_BYTES,
            _positive_int,
            "max header bytes",
        ),
        header_timeout_s=limit(
            args.header_timeout,
            "NAFTIKO_HEADER_TIMEOUT",
            DEFAULT_HEADER_TIMEOUT_S,
            _positive_float,
            "header timeout",
        ),
        idle_timeout_s=limit(
            args.idle_timeout,
            "NAFTIKO_IDLE_TIMEOUT",
            DEFAULT_IDLE_TIMEOUT_S,
            _positive_float,
            "idle timeout",
        ),
        keep_alive_timeout_s=limit(
            args.keep_alive_timeout,
            "NAFTIKO_KEEP_ALIVE_TIMEOUT",
            DEFAULT_KEEP_ALIVE_TIMEOUT_S,
            _positive_float,
            "keep-alive timeout",
        ),
        max_connections=limit(
            args.max_connections,
            "NAFTIKO_MAX_CONNECTIONS",
            DEFAULT_MAX_CONNECTIONS,
            _positive_int,
            "max connections",
        ),
        grace_period_s=DEFAULT_GRACE_PERIOD_S
        if grace is None
        else _positive_float(str(grace), "grace period", allow_zero=True),
        check=flag_or_env_bool(args.check, "NAFTIKO_CHECK"),
        reload=flag_or_env_bool(args.reload, "NAFTIKO_RELOAD"),
        stdio=getattr(args, "stdio", None),
        gateway_port=None if gateway is None else parse_port(str(gateway), "gateway port"),
        prefixes=prefixes,
        settings=settings,
        workers=workers,
        rate_limits=_rate_limits(args, env, settings, settings_path),
        resilience=resilience,
    )
