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

- **Log.** The outage is logged once for the site, not once per link (a 2,000-charger site
  logged 2,000 warnings per outage, again for each new session): a warning when links have
  been waiting for a probe interval (``cloud unreachable at URL: N charger link(s) waiting
  (reason)``) and one when a link gets through again. Each link's failures are at debug. A
  link's failure is its own, and the link warns itself, when the cloud refused it (below) or
  when other links are connected and no other waiting link failed for the same reason (its
  own TLS client certificate refused, say).

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
from collections import Counter
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
        self._failure = ("", "")  # the cloud's url and the latest failure of a probed link
        self._down = False  # "cloud unreachable" was logged, "reachable again" not yet
        self._failed_since = False  # a probed link failed since a link last got through
        self._up: set[Waiting] = set()  # connected (got through, not failed or gone since)
        self._reasons: Counter[str] = Counter()  # why the waiting links failed (not refused)
        self._reason_of: dict[Waiting, str] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def waiting(
        self, link: Waiting, *, probe: bool = True, url: str = "", reason: str = ""
    ) -> bool:
        """An attempt of ``link`` failed; ``probe`` False: the cloud refused it (it is up).
        ``url`` and ``reason`` (the cloud's and the failure's) go into the site's warning.

        True: the failure is the link's own, for it to log (see the module docstring)."""
        self._up.discard(link)
        self._set_reason(link, None)
        own = not probe or (bool(self._up) and not self._reasons[reason])
        if probe:
            self._set_reason(link, reason)
        if not own:
            self._failure = (url, reason)
            self._failed_since = True
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
        return own

    def discard(self, link: Waiting) -> None:
        """``link`` is gone (its charger left)."""
        self._forget(link)
        self._up.discard(link)

    def disconnected(self, link: Waiting) -> None:
        """The connection of ``link`` has ended (it will retry)."""
        self._up.discard(link)

    def got_through(self, link: Waiting) -> None:
        """``link`` connected: every link waiting to retry that was not nudged yet is nudged."""
        self._forget(link)
        self._up.add(link)
        self._failed_since = False  # the links nudged now are not failing yet
        nudge, self._nudge = self._nudge, set()
        self._nudged |= nudge
        spread = max(MIN_SPREAD_S, len(nudge) / LINKS_PER_SECOND)
        if self._down:  # the other end of the site's "cloud unreachable"
            self._down = False
            log.warning(
                "cloud reachable again: %d waiting charger link(s) retry within %.0f s",
                len(nudge),
                spread,
            )
        elif nudge:
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

    def _set_reason(self, link: Waiting, reason: str | None) -> None:
        old = self._reason_of.pop(link, None)
        if old is not None:
            self._reasons[old] -= 1
            if not self._reasons[old]:
                del self._reasons[old]
        if reason is not None:
            self._reason_of[link] = reason
            self._reasons[reason] += 1

    def _forget(self, link: Waiting) -> None:
        self._set_reason(link, None)
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
            if not self._down and self._failed_since and self._reason_of:
                self._down = True
                url, reason = self._failure
                log.warning(
                    "cloud unreachable%s: %d charger link(s) waiting (%s)",
                    f" at {url}" if url else "",
                    len(self._reason_of),
                    reason or "no reason given",
                )
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
