"""When the cloud answers again, the cloud links waiting out their back-off retry soon.

Every charger has its own cloud connection, each backing off on its own (exponential, up to
``reconnect_max_delay``, 60 s by default). After an outage the cloud is back for all of them at
once, but each link only notices at its next attempt, so a small site's outbox drained up to a
minute late. :class:`CloudReturn` is the site's one watch on the cloud:

- **Probe.** While any link waits to retry, about once a second (:data:`PROBE_INTERVAL_S`) one
  of them makes its next attempt now: its own full attempt (TCP, TLS, the WebSocket handshake
  with its credentials and OCPP version), so a cloud that accepts TCP but refuses handshakes
  is not taken for back, and a probe that succeeds is simply that link's connection. The links
  take turns, and a probe waits for the previous one's outcome, so a cloud that is down gets
  one attempt a second from the probes whatever the number of chargers. A failed probe leaves
  the link's back-off where it was.
- **Nudge.** A link that gets through (probed or not) nudges every other waiting link: each
  retries after a random delay, uniform in [0, max(:data:`MIN_SPREAD_S`, n /
  :data:`LINKS_PER_SECOND`)] for n waiting links (1 s for up to 100 links, 20 s for 2,000),
  so that thousands do not hit the CSMS in the same second.

A link takes at most one nudge between two connections of its own. A link the cloud refused
with an HTTP status below 500 (an identity it does not know, say) or whose OCPP version it
refused is not probed: the cloud is up and would refuse it again. It keeps its own back-off,
taking one nudge when others get through: nothing here can make it hammer the CSMS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Protocol

from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

LINKS_PER_SECOND = 100.0
"""Nudged links are spread so that about this many retry per second."""
MIN_SPREAD_S = 1.0
PROBE_INTERVAL_S = 1.0
"""The pause between the outcome of one probe and the next probe."""
PROBE_OUTCOME_S = 300.0
"""Longest wait for a probe's outcome (a link always reports one; this only guards the loop)."""


class Waiting(Protocol):
    """A cloud link waiting to retry."""

    def hint(self, delay: float) -> None:
        """Others got through: retry after ``delay`` seconds instead of when the backoff says."""

    def probe(self) -> bool:
        """Make the next attempt now; False when not waiting out a back-off at the moment."""


class CloudReturn:
    """The links waiting to retry, the probe while there are any, the nudge when one is back."""

    def __init__(
        self, rng: random.Random | None = None, *, probe_interval: float = PROBE_INTERVAL_S
    ) -> None:
        self._random = rng or random.Random()
        self._interval = probe_interval
        self._waiting: set[Waiting] = set()
        self._nudge: set[Waiting] = set()  # waiting and not nudged since they last connected
        self._nudged: set[Waiting] = set()
        self._probe: dict[Waiting, None] = {}  # probe candidates, the next turn first
        self._probing: Waiting | None = None
        self._outcome = asyncio.Event()  # the link probed last has failed, connected or left
        self._tasks = TaskOwner("cloud-return")
        self._prober: asyncio.Task[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._waiting)

    def waiting(self, link: Waiting, *, probe: bool = True) -> None:
        """An attempt of ``link`` failed; ``probe`` False: the cloud refused it (it is up)."""
        self._waiting.add(link)
        if link not in self._nudged:
            self._nudge.add(link)
        if probe:
            self._probe.setdefault(link)
        else:
            self._probe.pop(link, None)
        self._reported(link)
        if self._probe and (self._prober is None or self._prober.done()) and not self._closed:
            self._prober = self._tasks.spawn(self._probe_while_waiting(), "probe")

    def discard(self, link: Waiting) -> None:
        """``link`` is gone (its charger left)."""
        self._forget(link)

    def got_through(self, link: Waiting) -> None:
        """``link`` connected: every link waiting to retry that was not nudged yet is nudged."""
        self._forget(link)
        if not self._nudge:
            return
        nudge, self._nudge = self._nudge, set()
        self._nudged |= nudge
        spread = max(MIN_SPREAD_S, len(nudge) / LINKS_PER_SECOND)
        log.info(
            "the cloud answers again: %d waiting cloud link(s) retry within %.0f s",
            len(nudge),
            spread,
        )
        for other in nudge:
            other.hint(self._random.uniform(0.0, spread))

    async def close(self) -> None:
        """Stop probing (shutdown)."""
        self._closed = True
        await self._tasks.close("shutdown")

    def _forget(self, link: Waiting) -> None:
        self._waiting.discard(link)
        self._nudge.discard(link)
        self._nudged.discard(link)
        self._probe.pop(link, None)
        self._reported(link)

    def _reported(self, link: Waiting) -> None:
        if link is self._probing:
            self._probing = None
            self._outcome.set()

    async def _probe_while_waiting(self) -> None:
        while self._probe:
            await asyncio.sleep(self._interval)
            link = self._next_probe()
            if link is None:
                continue  # every candidate is trying already
            log.debug("probing the cloud (%d link(s) waiting)", len(self._waiting))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PROBE_OUTCOME_S):
                    await self._outcome.wait()

    def _next_probe(self) -> Waiting | None:
        """The next link in turn that takes the probe (it moves to the end of the turns)."""
        for _ in range(len(self._probe)):
            link = next(iter(self._probe))
            del self._probe[link]
            self._probe[link] = None
            self._outcome.clear()
            self._probing = link
            if link.probe():
                return link
            self._probing = None
        return None
