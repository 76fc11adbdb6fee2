"""``--reload`` in gateway mode: documents under the watched folders come, change and go.

A :class:`~naftiko.runtime.reload.FolderWatcher` polls the documents the command line
names (files, and what the folders hold). For each change, one at a time:

- a file added or changed is loaded and compiled; its adapters are built on a new
  engine and started, then put in place in one step: the gateway's prefix table, its
  member list and the aggregate ``/mcp`` member table are each replaced by one
  assignment, with no await between them. Requests already running on the previous
  version finish there (its app generations count them, calls through ``/mcp``
  included); its engine closes once they are done or the grace period ends;
- a file removed (or no longer a capability document) takes its adapters out the same
  way: its prefixes answer 404 from then on;
- a changed file that no longer loads keeps its previous version serving, marked
  degraded with the reason (``/status``, the catalogue) until a good version comes;
  a new file that does not load is not served and is listed as refused with why;
- a file whose namespace (prefix) is one another document serves is refused the same
  way, with a log line; every other document keeps serving. Refused files are tried
  again when a document is removed (its prefixes may be the ones they wanted).

After each change the aggregate announces ``notifications/tools/list_changed`` (and
the prompts and resources ones) to the stateful sessions it has seen
(``--mcp-stateful``); a stateless client has no session to be told on, and sees the
change at its next ``tools/list``. A document's own ``/NS/mcp`` is a new endpoint after
a change: its stateful sessions end with the previous version.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from naftiko.runtime.gateway import Member, build_member, tool_names
from naftiko.runtime.placement import (
    PlacedDocument,
    PlacementError,
    assign_prefixes,
    capability_files,
    gateway_member_slots,
    load_one,
    place_in_gateway,
    serves,
)
from naftiko.runtime.reload import AppGeneration, FolderWatcher
from naftiko.spec.diagnostics import LoadError
from naftiko.spec.loader import discover

log = logging.getLogger("naftiko.runtime")

# Diagnostics kept in a degraded or refused entry's reason; the log has them all.
MAX_REASON_LINES = 3


def _reason(lines: list[str]) -> str:
    shown = lines[:MAX_REASON_LINES]
    more = len(lines) - len(shown)
    return "; ".join(shown) + (f" (and {more} more, in the log)" if more > 0 else "")


class GatewayReloader:
    """Applies the changes of the watched folders to a running gateway."""

    def __init__(self, runtime: Any, served_type: Any) -> None:
        self.runtime = runtime
        self.served_type = served_type
        self.parts = runtime.gateway
        self.listener = runtime.served[0]  # prepare() puts the gateway listener first
        self.explicit = {Path(p) for p in runtime.config.paths}
        self._lock = asyncio.Lock()

    def files(self) -> list[Path]:
        """Every YAML file under the watched paths (the loader tells documents apart)."""
        return discover(self.runtime.config.paths)

    async def watch(self, stop: asyncio.Event) -> None:
        # Files that were skipped at start (shared files, unrelated YAML) are known too:
        # only a change to one of them is looked at again.
        watcher = self.runtime.watch_baseline or FolderWatcher(self.files)
        known, _ = capability_files(self.runtime.config.paths)
        log.info(
            "watching %s for documents added, changed or removed (%d served)",
            ", ".join(self.runtime.config.paths),
            len(known),
        )
        await watcher.watch(self.apply, self.runtime.config.reload_interval_s, stop)

    # ------------------------------------------------------------------ one change

    async def apply(self, path: Path, removed: bool) -> None:
        async with self._lock:
            await self._apply(path, removed)

    async def _apply(self, path: Path, removed: bool) -> None:
        runtime = self.runtime
        old: PlacedDocument | None = runtime.capabilities.get(path)
        if removed:
            runtime.refused.pop(path, None)
            if old is not None:
                await self._put(path, old, None, [])
                self._log(path, "removed", "removed %s: its adapters are no longer served", path)
                await self._retry_refused()
            return
        try:
            new = load_one(path, runtime.config, explicit=path in self.explicit)
        except LoadError as exc:
            lines = [d.format() for d in exc.diagnostics if d.severity == "error"]
            for line in lines:
                log.error("  %s", line, extra={"event": "diagnostic"})
            self._failed(path, old, _reason(lines or ["does not load"]))
            return
        except Exception as exc:  # a defect of ours must not take the gateway down
            self._failed(path, old, f"internal error while loading: {type(exc).__name__}: {exc}")
            return
        if new is None:  # not (or no longer) a capability document
            runtime.refused.pop(path, None)
            if old is not None:
                await self._put(path, old, None, [])
                self._log(path, "removed", "%s is no longer a capability document", path)
            return
        slots = gateway_member_slots(new, runtime.config)
        try:
            prefixes = assign_prefixes(slots, dict(runtime.config.prefixes), every_override=False)
        except PlacementError as exc:
            self._failed(path, old, _reason(list(exc.lines)))
            return
        others = {
            prefix: member
            for prefix, member in self.parts.app.members.items()
            if old is None or member.served.slot.capability is not old
        }
        clashes = [
            f"prefix /{prefix} is already served by {others[prefix].served.slot.name()} "
            f"({others[prefix].served.slot.origin}); rename the namespace, or pass --prefix "
            f"{path}:{slot.namespace}=OTHER and restart"
            for slot, prefix in zip(slots, prefixes, strict=True)
            if prefix in others
        ]
        if clashes:
            self._failed(path, old, _reason(clashes), verb="refused")
            return
        runtime.redactor.add(new.loaded.bindings.secret_values())
        placed = place_in_gateway(slots, runtime.config, prefixes)
        try:
            await self._put(path, old, new, placed)
        except Exception as exc:
            self._failed(path, old, f"cannot be served: {type(exc).__name__}: {exc}")
            return
        runtime.refused.pop(path, None)
        what = "; ".join(
            f"{s.slot.type} /{s.prefix}: {', '.join(serves(s.slot.plan))}"
            for s in runtime.served
            if s.slot.capability is new and s.prefix is not None
        )
        verb = "reloaded" if old is not None else "added"
        self._log(path, verb, "%s %s: %s", verb, path, what or "no adapter")

    async def _retry_refused(self) -> None:
        """A removal may free the prefix a refused document wanted: try those again."""
        for path in list(self.runtime.refused):
            if path.exists():
                await self._apply(path, False)

    def _log(self, path: Path, outcome: str, message: str, *args: Any) -> None:
        log.info(message, *args, extra={"event": "reload", "outcome": outcome, "file": str(path)})
        self.runtime.metrics.reloads.labels("ok").inc()

    def _failed(self, path: Path, old: PlacedDocument | None, reason: str, verb: str = "") -> None:
        runtime = self.runtime
        runtime.metrics.reloads.labels("failed").inc()
        if old is not None:
            old.stale = reason
            log.error(
                "reload of %s %s; the previous version keeps serving, marked degraded: %s",
                path,
                verb or "failed",
                reason,
                extra={"event": "reload", "outcome": "failed", "file": str(path)},
            )
        else:
            runtime.refused[path] = reason
            log.error(
                "%s is not served: %s",
                path,
                reason,
                extra={"event": "reload", "outcome": "refused", "file": str(path)},
            )

    # ------------------------------------------------------------------ the swap

    async def _put(
        self, path: Path, old: PlacedDocument | None, new: PlacedDocument | None, placed: list[Any]
    ) -> None:
        """Serve ``new``'s placed slots instead of ``old``'s adapters (either may be None).

        Everything is built and started first; a failure there leaves the gateway as it
        was. Then the tables are replaced together, and the previous version retired."""
        runtime, parts = self.runtime, self.parts
        engine = runtime._new_engine(new) if new is not None else None
        fresh: list[Any] = []
        members: list[Member] = []
        aggregated: list[Any] = []
        started: list[AppGeneration] = []
        previous_engine = runtime.engines.get(path)
        if new is not None:
            runtime.engines[path] = engine  # build_member reads the engine from here
        try:
            if engine is not None:
                await engine.start()
            for slot in placed:
                served = self.served_type(slot)
                member, in_aggregate = build_member(
                    runtime, served, slot.mount.lstrip("/"), self.listener
                )
                fresh.append(served)
                if member is None:
                    continue
                await member.app.current.start()
                started.append(member.app.current)
                served.state = "started"
                members.append(member)
                if in_aggregate is not None:
                    aggregated.append(in_aggregate)
        except BaseException:
            for generation in started:
                await generation.stop()
            if engine is not None:
                await engine.aclose()
            if previous_engine is not None:
                runtime.engines[path] = previous_engine
            else:
                runtime.engines.pop(path, None)
            raise
        leaving = [m for m in parts.members if old is not None and m.served.slot.capability is old]
        gone = {m.prefix for m in leaving}
        kept = [m for m in parts.members if m not in leaving]
        handlers = parts.handlers
        kept_aggregate = [m for m in handlers.members if m.prefix not in gone] if handlers else []
        # The swap: no await from here to the end of the tables.
        parts.members = kept + members
        parts.app.members = {m.prefix: m for m in parts.members}
        if handlers is not None:
            handlers.replace(kept_aggregate + aggregated)
            parts.tool_names = tool_names(handlers)
            parts.aggregated = {m.prefix for m in handlers.members}
        runtime.served = [
            s for s in runtime.served if old is None or s.slot.capability is not old
        ] + fresh
        if new is not None:
            runtime.capabilities[path] = new
        else:
            runtime.capabilities.pop(path, None)
            runtime.engines.pop(path, None)
        runtime.metrics.capabilities.set(len(runtime.capabilities))
        if handlers is not None:
            sent = await handlers.announce_change()
            log.debug("tools/list_changed sent to %d session(s)", sent)
        if old is not None:
            retired = [m.app.current for m in leaving]
            runtime._spawn(runtime._retire(retired, previous_engine, path), f"retire {path}")
