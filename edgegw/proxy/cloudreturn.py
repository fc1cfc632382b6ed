"""When one charger's cloud link gets through again, the others waiting to retry go now.

Every charger has its own cloud connection, each backing off on its own (exponential, up to
``reconnect_max_delay``, 60 s by default). After an outage the cloud is back for all of them at
once, but each link only notices at its next attempt, so the outbox drained up to a minute
late. :class:`CloudReturn` is the shared signal: a link that fails registers as waiting; a link
that connects tells the others, which retry after a random delay, spread wider the more of
them there are so that thousands do not hit the CSMS in the same second.

A link takes at most one such hint between two connections of its own. A charger the cloud
keeps refusing (an identity it does not know, say) therefore tries once more when others get
through, and otherwise keeps its own backoff: nothing can make it hammer the CSMS.
"""

from __future__ import annotations

import logging
import random
from typing import Protocol

log = logging.getLogger(__name__)

LINKS_PER_SECOND = 100.0
"""Hinted links are spread so that about this many retry per second."""
MIN_SPREAD_S = 1.0


class Waiting(Protocol):
    """A cloud link waiting to retry."""

    def hint(self, delay: float) -> None:
        """Retry after ``delay`` seconds instead of when the backoff says."""


class CloudReturn:
    """The links waiting to retry, and the hint that the cloud answers again."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._waiting: set[Waiting] = set()
        self._random = rng or random.Random()

    def __len__(self) -> int:
        return len(self._waiting)

    def waiting(self, link: Waiting) -> None:
        self._waiting.add(link)

    def discard(self, link: Waiting) -> None:
        self._waiting.discard(link)

    def got_through(self, link: Waiting) -> None:
        """``link`` connected: every link waiting to retry is hinted, and forgotten."""
        self._waiting.discard(link)
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, set()
        spread = max(MIN_SPREAD_S, len(waiting) / LINKS_PER_SECOND)
        log.info(
            "the cloud answers again: %d waiting cloud link(s) retry within %.0f s",
            len(waiting),
            spread,
        )
        for other in waiting:
            other.hint(self._random.uniform(0.0, spread))
