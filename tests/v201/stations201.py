"""2.0.1 stations that run sessions through outages and kills, and the judgement of the cloud's
record against theirs: used by ``test_soak201`` and the soak benchmark (``--v201``).

A :class:`Driver` runs sessions (Started, Updated x2, Ended) on a :class:`Station` until told to
stop; a TransactionEvent that got no answer is sent again, the same frame, once the station is
connected again, before anything new (as 2.0.1 asks of transaction messages). :func:`judge`
compares what each station sent with the :class:`~edgegw.sim.cloud201.SimCloud201`'s record:
every (transactionId, seqNo) there, in seqNo order per transaction, copies counted, and the
``offline`` flag against who answered (the cloud's answers carry its
``updatedPersonalMessage``, the gateway's do not).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake

from edgegw.sim import SimCallError
from edgegw.sim.charger201 import SimCharger201
from edgegw.sim.cloud201 import SimCloud201

CLOUD_MARK = "answered by the cloud"
"""The cloud's ``personal_message``: its answers say who answered."""


class Station(SimCharger201):
    """A station that tells ``on_event`` each time a TransactionEvent leaves it."""

    def __init__(
        self, charger_id: str, url: str, on_event: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(charger_id, url, call_timeout=15)
        self._on_event = on_event

    async def send_raw(self, text: str) -> None:
        await super().send_raw(text)
        if '"TransactionEvent"' in text:
            self._on_event()


class Driver:
    """Runs sessions on one station until :attr:`stopping` is set (the session under way is
    ended first); keeps what got no answer and sends it again once connected again."""

    def __init__(
        self, station: Station, up: asyncio.Event, tags: Sequence[str], *, gap_s: float
    ) -> None:
        self.station = station
        self.up = up
        self.tags = list(tags)
        self.gap_s = gap_s
        self.unanswered: deque[str] = deque()
        self.resent = 0
        self.sessions = 0
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        while True:
            await self._connected()
            if self.stopping.is_set() and not self.station.transactions:
                return
            try:
                if 1 not in self.station.transactions:
                    tag = self.tags[self.sessions % len(self.tags)]
                    await self._event(partial(self.station.start, 1, tag))
                    self.sessions += 1
                for step in (1, 2):
                    await asyncio.sleep(self.gap_s)  # a car charging, not a wait for readiness
                    await self._event(partial(self.station.meter, 1, 16.0, 500.0 * step))
                await asyncio.sleep(self.gap_s)
                await self._event(partial(self.station.stop, 1))
            except (ConnectionError, ConnectionClosed, TimeoutError):
                continue  # reconnect; what got no answer goes first

    async def _connected(self) -> None:
        while not self.station.connected:
            await self.up.wait()
            try:
                await self.station.connect()
                await self.station.boot()
                while self.unanswered:
                    await self.station.call("TransactionEvent", {}, raw=self.unanswered[0])
                    self.unanswered.popleft()
                    self.resent += 1
            except (OSError, InvalidHandshake, ConnectionError, ConnectionClosed, TimeoutError):
                await self.station.close()
                await asyncio.sleep(0.1)  # a station's reconnect interval

    async def _event(self, send: Callable[[], Awaitable[Any]]) -> None:
        before = len(self.station.sent)
        try:
            await send()
        except (ConnectionError, ConnectionClosed, TimeoutError):
            if len(self.station.sent) > before:  # it went out: the cloud may not have it
                self.unanswered.append(self.station.sent[before])
            raise ConnectionError("no answer") from None
        except SimCallError as exc:  # never expected: the gateway stores or relays every one
            raise AssertionError(f"{self.station.charger_id}: {exc}") from exc


@dataclass(slots=True)
class Judgement:
    """The cloud's record of the stations' TransactionEvents against what they sent."""

    events: int = 0
    """Distinct events the stations sent."""
    sessions: int = 0
    resent: int = 0
    """Frames the stations sent again (their first answer lost)."""
    offline: int = 0
    """Events the cloud has flagged ``offline`` (its last copy)."""
    copies: int = 0
    """Arrivals at the cloud beyond the first, per event."""
    copies_resent: int = 0
    """... of events the station itself sent more than once."""
    missing: list[str] = field(default_factory=list)
    invented: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    wrong_flag: list[str] = field(default_factory=list)
    unanswered: int = 0
    refused: int = 0

    @property
    def complete(self) -> bool:
        """Nothing lost or invented, in order, the flags as the answers say, no copy."""
        return self.sound and self.copies == 0

    @property
    def sound(self) -> bool:
        """Nothing lost or invented, in order, the flags as the answers say (copies
        allowed: at least once is OCPP's promise where a kill cut an answer off)."""
        return not (
            self.missing
            or self.invented
            or self.out_of_order
            or self.wrong_flag
            or self.unanswered
            or self.refused
        )

    def problems(self) -> list[str]:
        return [
            f"{what}: {items[:5]}"
            for what, items in (
                ("missing", self.missing),
                ("invented", self.invented),
                ("out of seqNo order", self.out_of_order),
                ("offline flag not as answered", self.wrong_flag),
            )
            if items
        ]


def judge(cloud: SimCloud201, drivers: Sequence[Driver]) -> Judgement:
    result = Judgement(refused=len(cloud.refused))
    for driver in drivers:
        station = driver.station
        cid = station.charger_id
        sent: dict[tuple[str, int], str] = {}  # (transaction id, seqNo) -> message id
        times_sent: Counter[tuple[str, int]] = Counter()
        for raw in station.sent:
            frame = json.loads(raw)
            if frame[2] == "TransactionEvent":
                key = (frame[3]["transactionInfo"]["transactionId"], frame[3]["seqNo"])
                sent.setdefault(key, frame[1])
                times_sent[key] += 1
        answers = {
            frame[1]: frame[2]
            for frame in (json.loads(raw) for raw in station.received)
            if frame[0] == 3
        }
        taken = [e for e in cloud.events if e.charger_id == cid]
        arrivals = Counter((e.transaction_id, e.seq_no) for e in taken)
        last_flag = {(e.transaction_id, e.seq_no): e.offline for e in taken}
        result.events += len(sent)
        result.sessions += driver.sessions
        result.resent += driver.resent
        result.unanswered += len(driver.unanswered)
        result.missing += [f"{cid} {k[1]}" for k in sent if k not in arrivals]
        result.invented += [f"{cid} {k[1]}" for k in arrivals if k not in sent]
        for key, count in arrivals.items():
            result.copies += count - 1
            if times_sent[key] > 1:
                result.copies_resent += count - 1
        seqs: dict[str, list[int]] = {}
        seen: set[tuple[str, int]] = set()
        for e in taken:
            if (e.transaction_id, e.seq_no) not in seen:
                seen.add((e.transaction_id, e.seq_no))
                seqs.setdefault(e.transaction_id, []).append(e.seq_no)
        result.out_of_order += [f"{cid} {s}" for s in seqs.values() if s != sorted(s)]
        for key, flag in last_flag.items():
            answer = answers.get(sent.get(key, ""), {})
            mark = answer.get("updatedPersonalMessage", {}).get("content")
            result.offline += flag
            if key in sent and flag != (mark != CLOUD_MARK):
                result.wrong_flag.append(f"{cid} {key[1]} offline={flag}")
    return result
