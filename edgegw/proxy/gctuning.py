"""Garbage-collector settings for a process that carries thousands of connections.

Measured at 2,000 chargers (tests/bench/capacity.py): the gateway holds ~700,000 objects the
cyclic collector tracks (two WebSockets, their tasks and buffers per charger, the configuration,
the card authority). With CPython's default thresholds (700, 10, 10) a full collection walked
all of them every ~15 s and stopped the event loop for 300-600 ms each time, which was the whole
of the relay's p99 round trip (330-600 ms against a p50 of 1.3 ms).

Two changes, both for the daemon process only (never for a library user or a test run):

* :func:`freeze` moves every object alive at that moment (modules, configuration, the loaded
  cards) to the permanent generation, which collections skip. Objects that die later are still
  freed by reference counting; only cycles among them would stay until exit.
* :func:`tune` raises the young-generation threshold, so that short-lived relay objects (one
  call's frames, futures, commands) are freed by reference counting before a collection happens
  to catch them alive and promote them; fewer promotions make full collections rarer.

A full collection that still stops the loop for long is logged (:class:`PauseLog`), so a site
that grows past what was measured shows it in the journal rather than as unexplained latency.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 20_000
"""Allocations (net) between young collections; CPython's default is 700."""
MIDDLE_THRESHOLD = 10
OLD_THRESHOLD = 10
LONG_PAUSE_S = 0.1
"""A full collection at least this long is logged."""


class PauseLog:
    """A ``gc.callbacks`` entry: logs full (generation 2) collections of ``threshold`` or more."""

    def __init__(self, threshold: float = LONG_PAUSE_S) -> None:
        self.threshold = threshold
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.longest = max(self.longest, took)
        if took >= self.threshold:
            log.info(
                "a full garbage collection paused the gateway for %.0f ms (%d objects tracked, "
                "%d collected)",
                took * 1000,
                len(gc.get_objects(generation=2)),
                info.get("collected", 0),
            )


def freeze() -> int:
    """Collect once, then exempt everything alive now from later collections; how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def tune() -> PauseLog:
    """Set the daemon's thresholds, freeze what start-up created, log long pauses (call once)."""
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    frozen = freeze()
    pauses = PauseLog()
    gc.callbacks.append(pauses)
    log.debug(
        "garbage collector: thresholds %d/%d/%d, %d start-up objects frozen",
        YOUNG_THRESHOLD,
        MIDDLE_THRESHOLD,
        OLD_THRESHOLD,
        frozen,
    )
    return pauses
