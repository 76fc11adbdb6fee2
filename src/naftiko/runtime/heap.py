"""Garbage-collector policy of the ``naftiko-run`` process: off while starting, frozen after.

Start-up allocates a great many long-lived objects (the MCP SDK's pydantic models, our
spec models, compiled plans) and almost no garbage, yet with the default thresholds the
collector runs full passes over all of them several times while they are created: a
sizeable share of the start-up CPU, for nothing. Once serving, every full collection
would walk them again (a pause on the request path, a p99 spike). So the CLI turns collection off
before it imports anything, and once the adapters are ready we collect the little
start-up garbage, move every survivor to the permanent generation (``gc.freeze``) and
turn collection back on for what requests allocate.

Only the CLI opts in (:func:`defer_collection`); a program that embeds the runtime keeps
its own collector settings, and the other functions do nothing for it.
"""

from __future__ import annotations

import gc

_deferred = False  # collection turned off by us, until after_startup
_frozen = False  # the permanent generation holds our start-up objects


def defer_collection() -> None:
    """Stop cyclic collection until :func:`after_startup` (the CLI calls this first)."""
    global _deferred
    if gc.isenabled():
        gc.disable()
        _deferred = True


def after_startup() -> None:
    """Collect start-up garbage, freeze the survivors, collect normally from now on."""
    global _deferred, _frozen
    if not _deferred:
        return
    _deferred = False
    gc.collect()
    gc.freeze()
    _frozen = True
    gc.enable()


def resume() -> None:
    """Turn collection back on if start-up never finished (``--check``, a failed start)."""
    global _deferred
    if _deferred:
        _deferred = False
        gc.enable()


def after_reload() -> None:
    """Let a retired model's reference cycles be freed, then freeze the new one.

    Frozen objects are never examined, so the previous model (frozen at start-up or at
    the last reload) would otherwise stay in memory if it holds a cycle.
    """
    if not _frozen:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
