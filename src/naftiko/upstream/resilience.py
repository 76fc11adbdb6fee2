"""Upstream resilience per consumed namespace: retries, a circuit breaker and a bulkhead.

The engine calls :meth:`Resilience.call` around ``send`` (the one seam); ``send`` itself
is unchanged and makes one exchange per attempt. Per namespace:

* **Bulkhead**: at most ``max_concurrent`` calls in flight (retries included); a call
  past it waits up to ``queue_wait_s`` for a slot, then is refused with a 503 problem.
* **Circuit breaker**: a call's outcome (after its retries: a call that recovered is a
  success) is a failure when the upstream could not be reached, timed out or answered
  5xx. ``breaker_failures`` consecutive failures, or a failure ratio of at least
  ``breaker_failure_ratio`` over ``breaker_window_s`` once ``breaker_min_calls`` calls
  were seen, open the circuit: for ``breaker_open_s`` every call is refused with a 503
  problem and ``Retry-After`` without reaching the upstream. Then up to
  ``breaker_probes`` calls go through (half-open); if they all succeed the circuit
  closes, one failure opens it again.
* **Retries**: only for a call that is safe to repeat (decided at load: an idempotent
  method, or a unit whose hints say idempotent or read-only), after a connection failure
  or a 429/502/503/504 answer. The wait is exponential backoff with full jitter, or the
  upstream's ``Retry-After`` when it gives one (a longer one than
  ``retry_after_cap_s`` is not waited for: the answer goes back to the caller). Retries
  stop at the call's deadline (``UpstreamSettings.total_timeout_s`` from its start,
  the last attempt cut at it), when the circuit opens, and when the namespace's retry
  budget is spent: retries may be at most ``retry_budget_ratio`` of the calls of the
  last ten seconds, or ``retry_budget_min_per_s`` per second, whichever allows more, so
  retries cannot multiply the load on an upstream that is already failing.

Policies are plain data (:class:`ResiliencePolicy`, :class:`ResilienceSettings` in
``UpstreamSettings.resilience``); :func:`resilience_settings` builds them from the
runtime settings file's ``upstream`` table and the ``--upstream`` flags, refusing an
unknown key with one line. The state (:class:`NamespaceGuard`) lives in a
:class:`Resilience` the runtime shares between every engine of the process, so a
reloaded document keeps its namespace's breaker.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from naftiko.errors import ErrorKind, Problem
from naftiko.observability import get_observer

__all__ = [
    "IDEMPOTENT_METHODS",
    "SETTING_KEYS",
    "NamespaceGuard",
    "Resilience",
    "ResiliencePolicy",
    "ResilienceSettings",
    "is_retry_safe",
    "resilience_settings",
]

log = logging.getLogger("naftiko.upstream")

# RFC 9110 9.2.2: repeating these has the effect of sending them once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})

CLOSED, HALF_OPEN, OPEN = "closed", "half-open", "open"
# The breaker gauge's values (``naftiko_upstream_breaker_state``).
STATE_VALUES: Mapping[str, int] = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


def is_retry_safe(method: str, hints: Mapping[str, bool] | None = None) -> bool:
    """Whether a call may be repeated: the unit's ``idempotent`` hint when it declares
    one (``read_only: true`` implies it), else the method (load time only)."""
    if hints:
        idempotent = hints.get("idempotent")
        if isinstance(idempotent, bool):
            return idempotent
        if hints.get("read_only") is True:
            return True
    return method.upper() in IDEMPOTENT_METHODS


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class ResiliencePolicy:
    """The knobs of one namespace (the README's "Upstream resilience" table)."""

    retries: int = 2
    backoff_base_s: float = 0.1
    backoff_max_s: float = 2.0
    retry_after_cap_s: float = 10.0
    retry_budget_ratio: float = 0.2
    retry_budget_min_per_s: float = 3.0
    breaker_failures: int = 5  # 0: no consecutive-failure rule
    breaker_failure_ratio: float = 0.5  # 0: no ratio rule
    breaker_min_calls: int = 20
    breaker_window_s: float = 30.0
    breaker_open_s: float = 30.0
    breaker_probes: int = 1
    max_concurrent: int = 100  # 0: no cap
    queue_wait_s: float = 1.0

    @property
    def breaker_enabled(self) -> bool:
        return self.breaker_failures > 0 or self.breaker_failure_ratio > 0


@dataclass(frozen=True, slots=True)
class ResilienceSettings:
    """The default policy and the namespaces that differ from it."""

    defaults: ResiliencePolicy = field(default_factory=ResiliencePolicy)
    namespaces: Mapping[str, ResiliencePolicy] = field(default_factory=dict)

    def policy(self, namespace: str) -> ResiliencePolicy:
        return self.namespaces.get(namespace, self.defaults)


def _int(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"an integer >= {minimum}")
        return value

    return parse


def _seconds(*, positive: bool, upper: float | None = None) -> Callable[[Any], float]:
    expected = (
        f"a number from 0 to {upper:g}"
        if upper is not None
        else ("a number > 0" if positive else "a number >= 0")
    )

    def parse(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError(expected) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(expected)
        value = float(value)
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise ValueError(expected)
        if upper is not None and value > upper:
            raise ValueError(expected)
        return value

    return parse


# Setting name (settings file and flags) -> (field of ResiliencePolicy, parser).
SETTING_KEYS: Mapping[str, tuple[str, Callable[[Any], Any]]] = {
    "retries": ("retries", _int(0)),
    "backoff_base": ("backoff_base_s", _seconds(positive=True)),
    "backoff_max": ("backoff_max_s", _seconds(positive=True)),
    "retry_after_cap": ("retry_after_cap_s", _seconds(positive=False)),
    "retry_budget_ratio": ("retry_budget_ratio", _seconds(positive=False, upper=1.0)),
    "retry_budget_min_per_second": ("retry_budget_min_per_s", _seconds(positive=False)),
    "breaker_failures": ("breaker_failures", _int(0)),
    "breaker_failure_ratio": ("breaker_failure_ratio", _seconds(positive=False, upper=1.0)),
    "breaker_min_calls": ("breaker_min_calls", _int(1)),
    "breaker_window": ("breaker_window_s", _seconds(positive=True)),
    "breaker_open": ("breaker_open_s", _seconds(positive=True)),
    "breaker_probes": ("breaker_probes", _int(1)),
    "max_concurrent": ("max_concurrent", _int(0)),
    "queue_wait": ("queue_wait_s", _seconds(positive=False)),
}
DEFAULTS_TABLE = "defaults"


def _values(table: Any, where: str) -> dict[str, Any]:
    """``{field: value}`` of one table of settings; ValueError with one line otherwise."""
    if not isinstance(table, Mapping):
        raise ValueError(f"{where}: must be a table of settings")
    values: dict[str, Any] = {}
    for key, raw in table.items():
        known = SETTING_KEYS.get(str(key))
        if known is None:
            raise ValueError(f"{where}: unknown setting {key!r}; known: {', '.join(SETTING_KEYS)}")
        name, parse = known
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ValueError(f"{where}.{key}: must be {exc}, got {raw!r}") from None
    return values


def resilience_settings(layers: Sequence[tuple[str, Any]]) -> ResilienceSettings:
    """The policies from ``(source, table)`` layers, lowest precedence first.

    Each table is the settings file's ``upstream`` table shape: ``defaults`` and one
    subtable per namespace. Defaults merge over the layers, and so does each namespace;
    a namespace's policy is the merged defaults with its own merged values on top (a
    namespace's own setting wins over any default). Raises ValueError, one line.
    """
    defaults: dict[str, Any] = {}
    namespaces: dict[str, dict[str, Any]] = {}
    for source, table in layers:
        if table is None:
            continue
        if not isinstance(table, Mapping):
            raise ValueError(f"{source}: must be a table of settings")
        for name, sub in table.items():
            where = f"{source}.{name}"
            if name == DEFAULTS_TABLE:
                defaults.update(_values(sub, where))
            else:
                namespaces.setdefault(str(name), {}).update(_values(sub, where))
    base = ResiliencePolicy(**defaults)
    policies = {ns: replace(base, **values) for ns, values in namespaces.items()}
    for ns, policy in (("defaults", base), *policies.items()):
        if policy.backoff_max_s < policy.backoff_base_s:
            raise ValueError(
                f"upstream {ns}: backoff_max ({policy.backoff_max_s:g}) is below "
                f"backoff_base ({policy.backoff_base_s:g})"
            )
    return ResilienceSettings(base, policies)


def pairs_table(items: Sequence[str], what: str) -> dict[str, dict[str, str]]:
    """``["[NS.]KEY=VALUE", ...]`` (the ``--upstream`` flag, ``NAFTIKO_UPSTREAM``) as an
    ``upstream`` table; a KEY without a namespace is a default."""
    table: dict[str, dict[str, str]] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(f"{what}: expected [NAMESPACE.]SETTING=VALUE, got {item!r}")
        namespace, dot, key = name.rpartition(".")
        table.setdefault(namespace if dot else DEFAULTS_TABLE, {})[key] = value
    return table


def policy_fields(policy: ResiliencePolicy) -> dict[str, Any]:
    """The policy by setting name (``/status``)."""
    names = {f: key for key, (f, _) in SETTING_KEYS.items()}
    return {names[f.name]: getattr(policy, f.name) for f in fields(policy)}


# --------------------------------------------------------------------------- state


class _Window:
    """Counts over a sliding window of ``slots`` buckets (no per-event allocation)."""

    __slots__ = ("_a", "_b", "_span", "_stamps")

    def __init__(self, window_s: float, slots: int = 10) -> None:
        self._span = window_s / slots
        self._stamps = [-1] * slots
        self._a = [0] * slots
        self._b = [0] * slots

    def add(self, now: float, a: int, b: int) -> None:
        tick = int(now / self._span)
        slot = tick % len(self._stamps)
        if self._stamps[slot] != tick:
            self._stamps[slot], self._a[slot], self._b[slot] = tick, 0, 0
        self._a[slot] += a
        self._b[slot] += b

    def totals(self, now: float) -> tuple[int, int]:
        oldest = int(now / self._span) - len(self._stamps) + 1
        a = b = 0
        for slot, stamp in enumerate(self._stamps):
            if stamp >= oldest:
                a += self._a[slot]
                b += self._b[slot]
        return a, b

    def clear(self) -> None:
        self._stamps = [-1] * len(self._stamps)


class _Breaker:
    """One namespace's circuit (times from the loop's monotonic clock)."""

    __slots__ = (
        "consecutive",
        "namespace",
        "open_until",
        "policy",
        "probe_successes",
        "probes",
        "state",
        "window",
    )

    def __init__(self, namespace: str, policy: ResiliencePolicy) -> None:
        self.namespace = namespace
        self.policy = policy
        self.state = CLOSED
        self.consecutive = 0
        self.window = _Window(policy.breaker_window_s)  # (calls, failures)
        self.open_until = 0.0
        self.probes = 0
        self.probe_successes = 0
        self._report()  # the gauge shows every namespace, closed ones too

    def admit(self, now: float) -> tuple[bool, float]:
        """``(probe, 0)`` when the call may go; ``(False, seconds)`` when it is refused."""
        if self.state == CLOSED:
            return False, 0.0
        if self.state == OPEN:
            if now < self.open_until:
                return False, self.open_until - now
            self._move(HALF_OPEN)
            self.probes = self.probe_successes = 0
        if self.probes < self.policy.breaker_probes:
            self.probes += 1
            return True, 0.0
        return False, 1.0  # the probes decide; a second is a fair guess

    def record(self, failed: bool | None, now: float, probe: bool) -> None:
        """One call's outcome; ``None`` when it ended without one (cancelled)."""
        if probe:
            self.probes -= 1
            if self.state != HALF_OPEN or failed is None:
                return
            if failed:
                self._open(now)
            else:
                self.probe_successes += 1
                if self.probe_successes >= self.policy.breaker_probes:
                    self.consecutive = 0
                    self.window.clear()
                    self._move(CLOSED)
            return
        if failed is None or self.state != CLOSED:
            return
        policy = self.policy
        if not failed:
            self.consecutive = 0
            self.window.add(now, 1, 0)
            return
        self.consecutive += 1
        self.window.add(now, 1, 1)
        if policy.breaker_failures and self.consecutive >= policy.breaker_failures:
            self._open(now)
            return
        if policy.breaker_failure_ratio:
            calls, failures = self.window.totals(now)
            ratio = policy.breaker_failure_ratio
            if calls >= policy.breaker_min_calls and failures >= ratio * calls:
                self._open(now)

    def _open(self, now: float) -> None:
        self.open_until = now + self.policy.breaker_open_s
        self.consecutive = 0
        self._move(OPEN)

    def _move(self, state: str) -> None:
        self.state = state
        if state == OPEN:
            log.warning(
                "upstream %s: circuit open for %g s (calls refused)",
                self.namespace,
                self.policy.breaker_open_s,
                extra={"event": "breaker", "namespace": self.namespace, "state": state},
            )
        else:
            log.info(
                "upstream %s: circuit %s",
                self.namespace,
                state,
                extra={"event": "breaker", "namespace": self.namespace, "state": state},
            )
        self._report()

    def _report(self) -> None:
        state = self.state
        # getattr: observers written before these hooks (tests' own) have no such method.
        report = getattr(get_observer(), "upstream_breaker", None)
        if report is not None:
            report(namespace=self.namespace, state=state)


class NamespaceGuard:
    """The resilience state of one consumed namespace."""

    __slots__ = ("breaker", "budget", "in_flight", "namespace", "policy", "waiters")

    def __init__(self, namespace: str, policy: ResiliencePolicy) -> None:
        self.namespace = namespace
        self.policy = policy
        self.breaker = _Breaker(namespace, policy) if policy.breaker_enabled else None
        self.budget = _Window(10.0)  # (calls, retries) of the last ten seconds
        self.in_flight = 0  # bulkhead slots taken (``max_concurrent``; 0 is no cap)
        self.waiters: deque[asyncio.Future[None]] = deque()

    def describe(self, now: float) -> dict[str, Any]:
        """What ``/status`` shows of this namespace."""
        breaker = self.breaker
        state: dict[str, Any] = {
            "namespace": self.namespace,
            "breaker": breaker.state if breaker is not None else "off",
            "inFlight": self.in_flight,
        }
        if breaker is not None and breaker.state == OPEN:
            state["retryAfter"] = max(1, math.ceil(breaker.open_until - now))
        return state

    def budget_allows(self, now: float) -> bool:
        calls, retries = self.budget.totals(now)
        policy = self.policy
        allowed = max(policy.retry_budget_ratio * calls, policy.retry_budget_min_per_s * 10.0)
        return retries < allowed

    # The bulkhead: ``in_flight`` counts the slots taken; a call finding them all taken
    # queues a future that ``leave`` hands a slot to. Written here rather than with
    # ``asyncio.Semaphore`` because the common case (a free slot) is then one comparison
    # instead of an acquire and a release: a quarter of this module's cost per call.
    def enter(self) -> bool:
        """Take a free slot at once; False when the call must queue for one."""
        cap = self.policy.max_concurrent
        if cap and (self.in_flight >= cap or self.waiters):
            return False
        self.in_flight += 1
        return True

    async def wait_for_slot(self) -> bool:
        """Queue for a slot; False when none frees within ``queue_wait_s``."""
        slot = asyncio.get_running_loop().create_future()
        self.waiters.append(slot)
        try:
            async with asyncio.timeout(self.policy.queue_wait_s):
                await slot
        except BaseException as exc:  # timed out, or the caller went away
            if slot.done() and not slot.cancelled():  # handed over just as it ended
                self.leave()
            elif slot in self.waiters:
                self.waiters.remove(slot)
            if isinstance(exc, TimeoutError):
                return False
            raise
        return True

    def leave(self) -> None:
        """Give the slot to the first call still queued, else free it."""
        waiters = self.waiters
        while waiters:
            slot = waiters.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self.in_flight -= 1


Attempt = Callable[[], Awaitable[Any]]  # -> UpstreamResponse | Problem


class Resilience:
    """The guards of every consumed namespace, created on first use."""

    def __init__(self, settings: ResilienceSettings | None = None) -> None:
        self.settings = settings or ResilienceSettings()
        self._guards: dict[str, NamespaceGuard] = {}

    def guard(self, namespace: str) -> NamespaceGuard:
        guard = self._guards.get(namespace)
        if guard is None:
            guard = self._guards[namespace] = NamespaceGuard(
                namespace, self.settings.policy(namespace)
            )
        return guard

    def states(self) -> list[dict[str, Any]]:
        """Every namespace called so far, for ``/status``."""
        now = time.monotonic()
        return [guard.describe(now) for _, guard in sorted(self._guards.items())]

    async def call(
        self,
        namespace: str,
        attempt: Attempt,
        *,
        retry_safe: bool,
        deadline_s: float,
        operation: str,
    ) -> Any:
        """``attempt()`` (one ``send``) under the namespace's breaker, bulkhead and retry
        policy; the last attempt's answer, or a 503 problem when the call is refused."""
        guard = self._guards.get(namespace) or self.guard(namespace)
        breaker = guard.breaker
        now = time.monotonic()
        probe = False
        if breaker is not None and breaker.state != CLOSED:
            probe, wait = breaker.admit(now)
            if wait:
                _event(namespace, "refused", "breaker_open")
                return _refusal(
                    namespace,
                    operation,
                    f"its circuit is open after repeated failures; calls are refused for "
                    f"{_whole(wait)} s more",
                    wait,
                )
        if not guard.enter() and not await guard.wait_for_slot():
            if probe:
                breaker.record(None, now, probe)  # type: ignore[union-attr]
            _event(namespace, "refused", "bulkhead_full")
            policy = guard.policy
            return _refusal(
                namespace,
                operation,
                f"{policy.max_concurrent} calls are in flight (its limit) and none "
                f"ended within {policy.queue_wait_s:g} s",
                1.0,
            )
        failed: bool | None = None
        try:
            guard.budget.add(now, 1, 0)
            outcome = await attempt()
            if retry_safe and _is_retryable(outcome) and guard.policy.retries:
                deadline = now + deadline_s
                outcome = await self._retry(guard, attempt, outcome, deadline, operation)
            failed = _is_failure(outcome)
            return outcome
        finally:
            guard.leave()
            if breaker is not None:
                breaker.record(failed, time.monotonic(), probe)

    async def _retry(
        self,
        guard: NamespaceGuard,
        attempt: Attempt,
        outcome: Any,
        deadline: float,
        operation: str,
    ) -> Any:
        policy, namespace, breaker = guard.policy, guard.namespace, guard.breaker
        for retry in range(policy.retries):
            if not _is_retryable(outcome):
                return outcome
            wait = _backoff(policy, retry)
            after = _retry_after(outcome)
            if after is not None:
                if after > policy.retry_after_cap_s:
                    _event(namespace, "skipped", "retry_after")
                    return outcome
                wait = after
            now = time.monotonic()
            if now + wait >= deadline:
                _event(namespace, "skipped", "deadline")
                return outcome
            if breaker is not None and breaker.state != CLOSED:
                _event(namespace, "skipped", "breaker_open")
                return outcome
            if not guard.budget_allows(now):
                _event(namespace, "skipped", "budget")
                return outcome
            guard.budget.add(now, 0, 1)
            await asyncio.sleep(wait)
            try:
                async with asyncio.timeout_at(_loop_deadline(deadline)):
                    outcome = await attempt()
            except TimeoutError:
                outcome = Problem.of(
                    ErrorKind.TIMEOUT,
                    "Upstream timeout",
                    f"upstream '{namespace}' ({operation}): no complete response within the "
                    "call's deadline (retries included)",
                )
            _event(namespace, "retried", "failed" if _is_retryable(outcome) else "recovered")
        return outcome


def _loop_deadline(deadline: float) -> float:
    """``deadline`` (``time.monotonic``) on the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


def _whole(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _refusal(namespace: str, operation: str, why: str, wait: float) -> Problem:
    after = _whole(wait)
    return Problem.of(
        ErrorKind.UNAVAILABLE,
        "Upstream unavailable",
        f"upstream '{namespace}' ({operation}) was not called: {why}; retry after {after} s",
        retry_after=after,
    )


def _status(outcome: Any) -> int | None:
    return getattr(outcome, "status", None) if not isinstance(outcome, Problem) else None


def _is_retryable(outcome: Any) -> bool:
    """A connection failure, or an answer that says "later" (429, 502, 503, 504)."""
    if isinstance(outcome, Problem):
        return outcome.kind is ErrorKind.UNREACHABLE
    return outcome.status in RETRY_STATUSES


def _is_failure(outcome: Any) -> bool:
    """What the breaker counts against the upstream: unreachable, timed out, or 5xx."""
    if isinstance(outcome, Problem):
        return outcome.kind in (ErrorKind.UNREACHABLE, ErrorKind.TIMEOUT)
    return outcome.status >= 500


def _backoff(policy: ResiliencePolicy, retry: int) -> float:
    """Full jitter: uniform over [0, min(max, base * 2^retry)]."""
    return random.uniform(0.0, min(policy.backoff_max_s, policy.backoff_base_s * (2**retry)))


def _retry_after(outcome: Any) -> float | None:
    """The upstream's ``Retry-After`` in seconds (delta or HTTP date), or None."""
    if isinstance(outcome, Problem):
        return None
    value = outcome.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _event(namespace: str, event: str, outcome: str) -> None:
    report = getattr(get_observer(), "upstream_resilience", None)
    if report is not None:
        report(namespace=namespace, event=event, outcome=outcome)
