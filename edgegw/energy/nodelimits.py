"""The limits in force at the site and at each circuit: the configured ones, lowered by a
temporary site limit (a caretaker's or an MQTT command) and by any source that lowers a node
from outside (an external limit signal, a grid operator's dimming, capacity-peak shaving).

Pure bookkeeping, no I/O; the site model asks it each round. Nothing here can raise a limit
above the configuration: the fuses do not change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection

from edgegw.energy.allocator import PerPhase, Phase

log = logging.getLogger("edgegw.energy.controller")

FOLLOWING_SOURCES = frozenset({"peak"})
"""Sources whose limit follows a measurement and moves every few seconds (capacity-peak
shaving, :data:`edgegw.energy.peakservice.SOURCE`): when they start and stop lowering a node is
logged at info, each move in between at debug."""


class NodeLimits:
    """Lowerings of the site (node ``None``) and of circuits (by name)."""

    def __init__(self) -> None:
        self.temporary: tuple[PerPhase, float | None] | None = None
        """A temporary site limit, and when it ends (clock; None: when ended)."""
        self.by_source: dict[tuple[str, str | None], PerPhase] = {}
        """Limits lowered from outside, by (source, node)."""

    def set_temporary(self, limit_a: PerPhase | None, duration_s: float | None, now: float) -> None:
        if limit_a is None:
            self.temporary = None
            return
        if any(not math.isfinite(a) or a < 0 for a in limit_a):
            raise ValueError("a temporary limit must be finite and not negative")
        ends = None if duration_s is None else now + max(0.0, duration_s)
        self.temporary = (limit_a, ends)

    def lower(self, source: str, node: str | None, limit_a: PerPhase | None) -> None:
        """``source`` lowers ``node`` to ``limit_a`` per phase until it calls again with
        ``None``. Each source's lowering is kept apart; the lowest of them and the configured
        limit holds. A limit at or below the node's margin pauses every session under it.
        Every change is logged at info, but the moves of a :data:`FOLLOWING_SOURCES` source."""
        key = (source, node)
        shown = node or "the site"
        if limit_a is None:
            if self.by_source.pop(key, None) is not None:
                log.info("%s no longer lowers %s", source, shown)
            return
        if len(limit_a) != len(Phase) or any(not math.isfinite(a) or a < 0 for a in limit_a):
            raise ValueError("a lowered limit needs three finite, non-negative currents (A)")
        before = self.by_source.get(key)
        if before != limit_a:
            level = (
                logging.DEBUG
                if before is not None and source in FOLLOWING_SOURCES
                else logging.INFO
            )
            amps = "/".join(f"{a:g}" for a in limit_a)
            log.log(level, "%s lowers %s to %s A", source, shown, amps)
        self.by_source[key] = limit_a

    def keep_circuits(self, names: Collection[str]) -> None:
        """Forget the lowerings of circuits no longer configured."""
        for key in [k for k in self.by_source if k[1] is not None and k[1] not in names]:
            del self.by_source[key]

    def lowered(
        self, limits: PerPhase, node: str | None, *, skip: Collection[str] = ()
    ) -> PerPhase:
        """``limits`` (a node's configured ones) lowered by every source that lowers it (but
        those in ``skip``)."""
        out = list(limits)
        for (source, lowered_node), lowered in self.by_source.items():
            if lowered_node == node and source not in skip:
                out = [min(out[p], lowered[p]) for p in Phase]
        return (out[0], out[1], out[2])

    def lowest(self, node: str | None, sources: Collection[str]) -> PerPhase | None:
        """The lowest of the lowerings of ``node`` by ``sources``, per phase (None: none)."""
        found = [v for (s, n), v in self.by_source.items() if n == node and s in sources]
        if not found:
            return None
        return (
            min(v[0] for v in found),
            min(v[1] for v in found),
            min(v[2] for v in found),
        )

    def site(self, configured: PerPhase, now: float) -> PerPhase:
        """The site's limit in force: ``configured``, lowered by the temporary limit while it
        lasts and by every source that lowers the site."""
        limits = self.lowered(configured, None)
        temporary = self.temporary
        if temporary is None:
            return limits
        limit, ends = temporary
        if ends is not None and now >= ends:
            self.temporary = None
            log.info("temporary site limit expired")
            return limits
        return (min(limits[0], limit[0]), min(limits[1], limit[1]), min(limits[2], limit[2]))
