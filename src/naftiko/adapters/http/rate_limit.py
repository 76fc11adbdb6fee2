"""Caller rate limits: one token bucket per adapter and caller, kept in this process or in Redis.

One limiter decides for every adapter; the adapters only translate its :class:`Decision`
(REST and skill: ``429`` problem+json with ``Retry-After`` and the ``RateLimit`` /
``RateLimit-Policy`` fields; MCP: a ``tools/call`` result with ``isError``, a JSON-RPC
error for ``resources/read`` and ``prompts/get``, all with :meth:`Decision.message`), so
the same caller meets the same limit whichever protocol it speaks.

* **Policy** (:class:`RatePolicy`): ``RATE/PERIOD[,burst=N]`` -- ``RATE`` requests per
  ``PERIOD`` (``second``, ``minute``, ``hour``, ``day``, or a number and ``s``/``m``/``h``/
  ``d``: ``10s``), refilled continuously; ``burst`` is the bucket's size (default
  ``RATE``), the most a rested caller may send at once. ``off`` is no limit.
* **Caller**: the identity inbound authentication recorded for the request
  (``naftiko.adapters.http.auth.CALLER_SCOPE_KEY``: the token's subject, or a hash of the
  static credential), else the client's address. Bucket keys hold only a SHA-256 of it.
* **Stores**: :class:`LocalStore` (this process; with several worker processes each has
  its own buckets) or :class:`RedisStore` (every replica shares the buckets through one
  atomic Lua script using Redis's clock; keys are namespaced and expire once a bucket
  would be full again). When Redis cannot be reached the limiter falls back to the local
  store -- never to no limit -- logs one warning per outage, counts it, and goes back to
  Redis once a probe succeeds.
* **Fields**: draft-ietf-httpapi-ratelimit-headers-09. ``RateLimit-Policy:
  "NS";q=BURST;w=W`` where ``W`` is the time the bucket takes to refill from empty (so
  ``q`` per ``w`` is the sustained rate); ``RateLimit: "NS";r=REMAINING;t=T`` with ``T``
  the seconds until the bucket is full again. ``Retry-After`` (RFC 9110) is the whole
  seconds until the next request would be accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from naftiko.adapters.http.auth.base import CALLER_SCOPE_KEY
from naftiko.adapters.http.common import json_bytes, problem_fields
from naftiko.errors import LoadTimeError
from naftiko.media_types import PROBLEM_MEDIA_TYPE

__all__ = [
    "AdapterLimit",
    "Decision",
    "LocalStore",
    "RateLimitConfig",
    "RateLimitMiddleware",
    "RateLimitSpecError",
    "RateLimiter",
    "RatePolicy",
    "RedisStore",
    "caller_of",
    "config_of",
    "parse_entries",
    "parse_policy",
    "parse_table",
    "redacted_url",
]

log = logging.getLogger("naftiko.rate_limit")

DRAFT = "draft-ietf-httpapi-ratelimit-headers-09"
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
_PERIOD = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")
TABLE_KEYS = ("rate", "burst")
DEFAULTS_TABLE = "defaults"


class RateLimitSpecError(ValueError, LoadTimeError):
    """A rate limit that cannot be read; the message is one line naming where (exit 2)."""


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """``rate`` requests per ``period_s`` seconds, at most ``burst`` at once."""

    rate: int
    period_s: float
    burst: int
    text: str  # as the operator wrote it, for messages
    per_second: float = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_second", self.rate / self.period_s)

    @property
    def window_s(self) -> int:
        """Seconds an empty bucket takes to fill (the policy's ``w``), at least 1."""
        return max(1, math.ceil(self.burst / self.per_second))


def parse_policy(text: str, where: str) -> RatePolicy | None:
    """``RATE/PERIOD[,burst=N]`` or ``off`` (None); :class:`RateLimitSpecError` otherwise."""
    spec = text.strip()
    if spec.lower() == "off":
        return None
    head, *options = [part.strip() for part in spec.split(",")]
    rate_text, slash, period_text = head.partition("/")
    expected = "expected RATE/PERIOD[,burst=N] (e.g. 60/minute, 5/10s,burst=2) or off"
    if not slash:
        raise RateLimitSpecError(f"{where}: {text!r}: {expected}")
    try:
        rate = int(rate_text.strip())
    except ValueError:
        raise RateLimitSpecError(f"{where}: {text!r}: RATE must be a whole number") from None
    match = _PERIOD.match(period_text.lower())
    if rate <= 0 or match is None or match.group(2) not in _UNITS:
        raise RateLimitSpecError(f"{where}: {text!r}: {expected}")
    period = float(match.group(1) or 1) * _UNITS[match.group(2)]
    if period <= 0:
        raise RateLimitSpecError(f"{where}: {text!r}: the period must be longer than 0")
    burst = rate
    for option in options:
        name, eq, value = option.partition("=")
        if name.strip().lower() != "burst" or not eq:
            raise RateLimitSpecError(f"{where}: {text!r}: unknown option {option!r} ({expected})")
        burst = _positive(value.strip(), f"{where}: {text!r}: burst")
    return RatePolicy(rate, period, burst, spec)


def _positive(value: Any, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number <= 0 or str(number) != str(value).strip():
        raise RateLimitSpecError(f"{what} must be a whole number above 0, not {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """The limits of a runtime: a default and per adapter namespace (None: no limit)."""

    default: RatePolicy | None = None
    adapters: Mapping[str, RatePolicy | None] = field(default_factory=dict)
    redis_url: str | None = None

    def policy_for(self, namespace: str) -> RatePolicy | None:
        if namespace in self.adapters:
            return self.adapters[namespace]
        return self.default

    @property
    def enabled(self) -> bool:
        return self.default is not None or any(p is not None for p in self.adapters.values())


Entries = dict[str | None, RatePolicy | None]  # namespace (None: the default) -> policy


def parse_entries(items: Iterable[str], where: str) -> Entries:
    """``[NS=]SPEC`` items (flags, the environment variable) by namespace."""
    found: Entries = {}
    for item in items:
        namespace, eq, spec = item.partition("=")
        # ``burst=N`` has an ``=`` too: a namespace is what comes before the first ``=``
        # only when no ``/`` does (a spec always has one), and ``NS=off`` is a namespace.
        if not eq or "/" in namespace or "," in namespace:
            namespace, spec = "", item
        name = namespace.strip() or None
        label = f"{where} {name}" if name else where
        found[name] = parse_policy(spec, label)
    return found


def parse_table(table: Mapping[str, Any], where: str) -> Entries:
    """The settings file's ``rate_limits`` table: ``defaults`` and per-namespace tables,
    each with ``rate`` (``RATE/PERIOD`` or ``off``) and ``burst``; anything else refused."""
    found: Entries = {}
    for name, entry in table.items():
        label = f"{where}: rate_limits.{name}"
        if not isinstance(entry, Mapping):
            raise RateLimitSpecError(
                f"{label}: expected a table with {' and '.join(TABLE_KEYS)} "
                f"(rate_limits holds '{DEFAULTS_TABLE}' and one table per adapter namespace)"
            )
        unknown = sorted(set(entry) - set(TABLE_KEYS))
        if unknown:
            raise RateLimitSpecError(
                f"{label}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"expected {', '.join(TABLE_KEYS)}"
            )
        rate = entry.get("rate")
        if not isinstance(rate, str):
            raise RateLimitSpecError(f'{label}: \'rate\' must be a string: "60/minute" or "off"')
        policy = parse_policy(rate, label)
        if "burst" in entry:
            if policy is None:
                raise RateLimitSpecError(f"{label}: 'burst' with rate \"off\" means nothing")
            burst = _positive(entry["burst"], f"{label}: burst")
            policy = RatePolicy(policy.rate, policy.period_s, burst, f"{rate},burst={burst}")
        found[None if name == DEFAULTS_TABLE else str(name)] = policy
    return found


def config_of(layers: Iterable[Entries], redis_url: str | None = None) -> RateLimitConfig:
    """Later layers win, per namespace (settings file, then environment, then flags)."""
    merged: Entries = {}
    for layer in layers:
        merged.update(layer)
    default = merged.pop(None, None)
    return RateLimitConfig(default, {str(k): v for k, v in merged.items()}, redis_url)


def redacted_url(url: str) -> str:
    """A Redis URL without its user name and password (for logs and ``/status``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "redis://<unparsable>"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    if parts.username or parts.password:
        netloc = "***@" + netloc
    # The query is dropped too: redis-py reads a password from it.
    return f"{parts.scheme}://{netloc}{parts.path}"


def caller_of(scope: Scope) -> str:
    """Who is calling: inbound auth's identity, else the client's address."""
    identity = scope.get(CALLER_SCOPE_KEY)
    if identity is not None:
        return identity
    client = scope.get("client")
    return f"address:{client[0]}" if client else "address:unknown"


# --------------------------------------------------------------------------- decisions


class Decision:
    """The limiter's answer for one request; adapters only translate it."""

    __slots__ = ("allowed", "limit", "remaining", "reset_s", "retry_after_s")

    def __init__(
        self, limit: AdapterLimit, allowed: bool, remaining: int, retry_after_s: int, reset_s: int
    ) -> None:
        self.limit = limit
        self.allowed = allowed
        self.remaining = remaining
        self.retry_after_s = retry_after_s  # whole seconds until a call is accepted (0: now)
        self.reset_s = reset_s  # whole seconds until the bucket is full again

    @property
    def namespace(self) -> str:
        return self.limit.namespace

    @property
    def policy(self) -> RatePolicy:
        return self.limit.policy

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``RateLimit-Policy`` and ``RateLimit`` (and ``Retry-After`` when refused)."""
        limit = self.limit
        fields = [
            limit.policy_field,
            (b"ratelimit", b"%s;r=%d;t=%d" % (limit.field_name, self.remaining, self.reset_s)),
        ]
        if not self.allowed:
            fields.append((b"retry-after", b"%d" % self.retry_after_s))
        return fields

    def message(self) -> str:
        """The refusal in words: which limit, and when to retry."""
        seconds = "second" if self.retry_after_s == 1 else "seconds"
        return (
            f"Rate limit exceeded for {self.namespace!r}: {self.policy.text} per caller. "
            f"Retry after {self.retry_after_s} {seconds}."
        )

    def problem(self) -> dict[str, Any]:
        return problem_fields(
            429,
            "Too many requests",
            self.message(),
            "rate-limited",
            retryAfter=self.retry_after_s,
        )


def _sf_string(text: str) -> str:
    """A structured-field String (RFC 9651): printable ASCII, quoted."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- stores


class LocalStore:
    """Buckets in this process: ``key -> (tokens, updated)`` on the monotonic clock.

    At most ``max_buckets``: past it, buckets that are full again are dropped first (a
    full bucket is the same as none), then the least recently used.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000
    ) -> None:
        self.clock = clock
        self.max_buckets = max_buckets
        self.buckets: OrderedDict[str, tuple[float, float, float]] = OrderedDict()

    def take(self, key: str, policy: RatePolicy) -> tuple[bool, float]:
        """Take one token if there is one; ``(allowed, tokens left)``."""
        now = self.clock()
        rate = policy.per_second
        state = self.buckets.get(key)
        if state is None:
            tokens = float(policy.burst)
            if len(self.buckets) >= self.max_buckets:
                self._shrink(now)
        else:
            tokens = min(policy.burst, state[0] + max(0.0, now - state[1]) * rate)
            self.buckets.move_to_end(key)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        full_at = now + (policy.burst - tokens) / rate
        self.buckets[key] = (tokens, now, full_at)
        return allowed, tokens

    def _shrink(self, now: float) -> None:
        for key in [k for k, (_, _, full_at) in self.buckets.items() if full_at <= now]:
            del self.buckets[key]
        while len(self.buckets) >= self.max_buckets:
            self.buckets.popitem(last=False)


# The bucket, atomically, on Redis's own clock (replicas' clocks may differ). Returns
# {allowed, tokens left as a string}: Redis truncates Lua numbers to integers.
TOKEN_BUCKET_LUA = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
else
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tokens + elapsed * rate)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
local left = string.format('%.17g', tokens)
redis.call('HSET', KEYS[1], 'tokens', left, 'at', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], ttl)
return {allowed, left}
"""

KEY_PREFIX = "naftiko:ratelimit:"
KEY_CACHE_SIZE = 4096


class RedisStore:
    """Buckets in Redis, shared by every process pointed at the same server."""

    def __init__(self, url: str, *, timeout_s: float = 1.0) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        self.url = url
        # One immediate retry on a broken connection (a pooled one Redis closed when it
        # restarted), none on a timeout and no backoff: a failure must reach us at once so
        # the request is decided locally instead of waiting on a server that is gone.
        self.client = redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.script = self.client.register_script(TOKEN_BUCKET_LUA)

    async def take(self, key: str, policy: RatePolicy) -> tuple[bool, float]:
        ttl_ms = math.ceil(policy.burst / policy.per_second * 1000) + 1000
        allowed, tokens = await self.script(
            keys=[KEY_PREFIX + key], args=[policy.burst, repr(policy.per_second), ttl_ms]
        )
        return int(allowed) == 1, float(tokens)

    async def ping(self) -> None:
        await self.client.ping()

    async def aclose(self) -> None:
        await self.client.aclose()


# --------------------------------------------------------------------------- the limiter


class RateLimiter:
    """Every adapter's limits, one store (Redis, with the local store as the fallback).

    ``on_limited(adapter_type, namespace)`` is called for every refusal and
    ``on_fallback()`` once per Redis outage (the runtime counts both); ``probe_interval_s``
    is how often, while Redis is out, a request starts a reconnection probe.
    """

    def __init__(
        self,
        config: RateLimitConfig,
        *,
        on_limited: Callable[[str, str], None] | None = None,
        on_fallback: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        probe_interval_s: float = 2.0,
        redis_timeout_s: float = 1.0,
    ) -> None:
        self.config = config
        self.local = LocalStore(clock)
        self.redis = (
            RedisStore(config.redis_url, timeout_s=redis_timeout_s) if config.redis_url else None
        )
        self.redis_up = self.redis is not None
        self.on_limited = on_limited
        self.on_fallback = on_fallback
        self.clock = clock
        self.probe_interval_s = probe_interval_s
        self._probed_at = float("-inf")
        self._probe: asyncio.Task[None] | None = None
        # caller -> its hash, for callers seen lately (a few thousand at most matter).
        self.keys: dict[str, str] = {}

    def key_of(self, caller: str) -> str:
        """The bucket key part of ``caller``: a SHA-256 of it, never the caller itself."""
        key = hashlib.sha256(caller.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        if len(self.keys) >= KEY_CACHE_SIZE:
            self.keys.clear()
        self.keys[caller] = key
        return key

    def for_adapter(self, adapter_type: str, namespace: str) -> AdapterLimit | None:
        """The limit of one adapter, or None when it has none."""
        policy = self.config.policy_for(namespace)
        return None if policy is None else AdapterLimit(self, adapter_type, namespace, policy)

    def policies(self) -> dict[str, str]:
        """What is configured, in the operator's words (``*``: every other adapter)."""
        found = {ns: p.text if p else "off" for ns, p in self.config.adapters.items()}
        if self.config.default is not None:
            found["*"] = self.config.default.text
        return found

    async def start(self) -> None:
        """Log the limits; check that Redis answers (warn and limit locally when not)."""
        text = ", ".join(f"{ns} {policy}" for ns, policy in self.policies().items())
        log.info("rate limits per caller: %s", text, extra={"event": "rate-limits"})
        if self.redis is None:
            return
        try:
            await self.redis.ping()
        except Exception as exc:
            self._down(exc)
        else:
            log.info("rate limits shared through Redis at %s", redacted_url(self.redis.url))

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(BaseException):
                await self._probe
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    def describe(self) -> dict[str, Any]:
        """For ``/status``: the store and its state, never the Redis credentials."""
        if self.redis is None:
            return {"store": "local", "policies": self.policies()}
        return {
            "store": "redis" if self.redis_up else "local (Redis unreachable)",
            "redis": redacted_url(self.redis.url),
            "policies": self.policies(),
        }

    async def take(self, key: str, policy: RatePolicy) -> tuple[bool, float]:
        if self.redis is not None:
            if self.redis_up:
                try:
                    return await self.redis.take(key, policy)
                except Exception as exc:
                    self._down(exc)
            else:
                self._maybe_probe()
        return self.local.take(key, policy)

    def _down(self, exc: BaseException) -> None:
        assert self.redis is not None
        if not self.redis_up:  # already out: one warning per outage
            return
        self.redis_up = False
        self._probed_at = self.clock()
        log.warning(
            "RATE LIMITS: Redis at %s is unreachable (%s); each process now limits on its own "
            "(local buckets) until Redis answers again",
            redacted_url(self.redis.url),
            type(exc).__name__,
            extra={"event": "rate-limit-fallback"},
        )
        if self.on_fallback is not None:
            self.on_fallback()

    def _maybe_probe(self) -> None:
        if self._probe is not None or self.clock() - self._probed_at < self.probe_interval_s:
            return
        self._probed_at = self.clock()
        self._probe = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        assert self.redis is not None
        try:
            await self.redis.ping()
        except Exception:
            return
        finally:
            self._probe = None
        self.redis_up = True
        log.warning(
            "RATE LIMITS: Redis at %s answers again; limits are shared again",
            redacted_url(self.redis.url),
            extra={"event": "rate-limit-recovered"},
        )


class AdapterLimit:
    """One adapter's limit; :meth:`take` is what an adapter calls per request. Everything
    that does not depend on the request is worked out here, once per adapter."""

    __slots__ = (
        "adapter_type",
        "field_name",
        "key_prefix",
        "limiter",
        "namespace",
        "policy",
        "policy_field",
    )

    def __init__(
        self, limiter: RateLimiter, adapter_type: str, namespace: str, policy: RatePolicy
    ) -> None:
        self.limiter = limiter
        self.adapter_type = adapter_type
        self.namespace = namespace
        self.policy = policy
        self.key_prefix = f"{adapter_type}:{namespace}:"
        self.field_name = _sf_string(namespace).encode()
        self.policy_field = (
            b"ratelimit-policy",
            b"%s;q=%d;w=%d" % (self.field_name, policy.burst, policy.window_s),
        )

    async def take(self, caller: str) -> Decision:
        limiter, policy = self.limiter, self.policy
        key = limiter.keys.get(caller)
        if key is None:
            key = limiter.key_of(caller)
        key = self.key_prefix + key
        if limiter.redis is None:  # no await: the common case costs no coroutine
            allowed, tokens = limiter.local.take(key, policy)
        else:
            allowed, tokens = await limiter.take(key, policy)
        rate = policy.per_second
        missing = policy.burst - tokens
        reset = math.ceil(missing / rate) if missing > 0 else 0
        if allowed:
            return Decision(self, True, int(tokens), 0, reset)
        if self.limiter.on_limited is not None:
            self.limiter.on_limited(self.adapter_type, self.namespace)
        retry = max(1, math.ceil((1.0 - tokens) / rate))
        return Decision(self, False, int(tokens), retry, reset)


# --------------------------------------------------------------------------- skill (ASGI)


class RateLimitMiddleware:
    """The limit as ASGI middleware (the skill adapter): after inbound authentication, a
    refused request gets the 429 problem; an accepted one carries the ``RateLimit`` fields."""

    def __init__(self, app: ASGIApp, limit: AdapterLimit) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decision = await self.limit.take(caller_of(scope))
        fields = decision.headers()
        if not decision.allowed:
            body = json_bytes(decision.problem())
            headers = [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *fields,
            ]
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *fields]}
            await send(message)

        await self.app(scope, receive, send_with_fields)
