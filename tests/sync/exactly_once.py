"""The cloud's record against the chargers': every transaction message exactly once, in order.

:func:`tests.sync.record.check_cloud_has` counts only the copies the cloud answered (a copy
whose answer a closing connection dropped may come again). The end-to-end tests of issue 16
run where no connection to the cloud closes with a CALL outstanding, so nothing may reach the
cloud twice at all: here *every* transaction CALL the cloud received counts, refused and
unanswered copies included.

Each session is named by its StartTransaction payload (unique per charger in these tests), on
both sides: the charger's transaction id names the session it was given for; the cloud's id
names the start the cloud gave it to. Each message becomes ``action payload`` with the
``transactionId`` replaced by that name, so a message sent with a local id the cloud never
heard of, or with transaction id 0, can never match.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegw.sim.cloud import CloudRecord, SimCloud
from tests.bench.soak_check import is_tx
from tests.sync.driver import CallRefused, RetryingCharger
from tests.sync.gateway_process import GatewayProcess, NotifySocket, free_port
from tests.sync.record import charger_record
from tests.sync.test_outage import Site, enrol_cards, write_config

JsonDict = dict[str, Any]


def _canonical(action: str, payload: JsonDict, names: dict[int, str]) -> str:
    if action != "StartTransaction":
        tx = payload.get("transactionId")
        if isinstance(tx, int):
            payload = {**payload, "transactionId": names.get(tx, f"<id {tx} of no session>")}
    return f"{action} {json.dumps(payload, sort_keys=True, separators=(',', ':'))}"


def _short(action: str, payload: JsonDict, names: dict[int, str]) -> str:
    """``action(session)`` with the charger's timestamp: enough to read a failure."""
    tx = payload.get("transactionId")
    name = names.get(tx, f"id {tx}") if isinstance(tx, int) else ""
    when = payload.get("timestamp") or next(
        (v.get("timestamp") for v in payload.get("meterValue", [])), ""
    )
    return f"{action}({name}){str(when)[11:16]}"


@dataclass(slots=True)
class Delivery:
    """One charger's transaction messages as it sent them and as the cloud received them."""

    charger_id: str
    want: list[str] = field(default_factory=list)
    got: list[str] = field(default_factory=list)
    want_short: list[str] = field(default_factory=list)
    got_short: list[str] = field(default_factory=list)
    bad_start_answers: list[JsonDict] = field(default_factory=list)
    """Answers to a StartTransaction that were not ``Accepted`` with a real transaction id."""
    unanswered: int = 0
    """CALLs of this charger (any action) the cloud has not answered yet."""

    @property
    def complete(self) -> bool:
        """Everything the charger sent has reached the cloud (copies or not), all answered."""
        return not Counter(self.want) - Counter(self.got) and self.unanswered == 0


def delivery(cloud: SimCloud, driver: RetryingCharger) -> Delivery:
    cid = driver.charger_id
    record = charger_record(driver.sent)
    starts = [json.dumps(p, sort_keys=True) for a, p in record if a == "StartTransaction"]
    mine: dict[int, str] = {}  # the charger's transaction id -> session name
    for answered in driver.answered:
        if answered.action == "StartTransaction":
            key = json.dumps(answered.payload, sort_keys=True)
            mine[int(answered.answer["transactionId"])] = f"session {starts.index(key) + 1}"
    result = Delivery(cid)
    result.want = [_canonical(a, p, mine) for a, p in record]
    result.want_short = [_short(a, p, mine) for a, p in record]

    records = [r for r in cloud.records if r.charger_id == cid]
    answers: dict[str, CloudRecord] = {
        r.message_id: r for r in records if r.direction == "out" and r.message_type in (3, 4)
    }
    calls = [r for r in records if r.direction == "in" and r.message_type == 2]
    result.unanswered = sum(1 for r in calls if r.message_id not in answers)
    theirs: dict[int, str] = {}  # the cloud's transaction id -> session name
    received: list[CloudRecord] = []
    for r in calls:
        if r.action is None or not isinstance(r.payload, dict) or not is_tx(r.action, r.payload):
            continue
        received.append(r)
        answer = answers.get(r.message_id)
        if r.action != "StartTransaction" or answer is None:
            continue
        key = json.dumps(r.payload, sort_keys=True)
        name = f"session {starts.index(key) + 1}" if key in starts else "<a start never sent>"
        if answer.message_type == 3:
            tx = answer.payload.get("transactionId")
            status = answer.payload.get("idTagInfo", {}).get("status")
            if isinstance(tx, int) and tx > 0 and status == "Accepted":
                theirs[tx] = name
                continue
        result.bad_start_answers.append({"session": name, "answer": answer.payload})
    result.got = [_canonical(str(r.action), r.payload, theirs) for r in received]
    result.got_short = [_short(str(r.action), r.payload, theirs) for r in received]
    return result


def everything_arrived(cloud: SimCloud, drivers: Sequence[RetryingCharger]) -> bool:
    """A condition to wait for: every charger's messages reached the cloud and were answered."""
    return all(delivery(cloud, d).complete for d in drivers)


def assert_exactly_once(cloud: SimCloud, drivers: Sequence[RetryingCharger]) -> int:
    """Every transaction message once, in order, the cloud's ids; returns the sessions seen."""
    problems: list[str] = []
    sessions = 0
    for driver in drivers:
        d = delivery(cloud, driver)
        sessions += sum(1 for w in d.want if w.startswith("StartTransaction "))
        if d.got != d.want:
            extra = list((Counter(d.got) - Counter(d.want)).elements())
            lost = list((Counter(d.want) - Counter(d.got)).elements())
            problems.append(
                f"{d.charger_id}: the cloud received {len(d.got)} transaction messages for "
                f"{len(d.want)} sent ({len(lost)} missing, {len(extra)} extra or changed"
                f"{', out of order' if not lost and not extra else ''})\n"
                f"    charger sent:   {' '.join(d.want_short)}\n"
                f"    cloud received: {' '.join(d.got_short)}"
            )
        if d.bad_start_answers:
            problems.append(f"{d.charger_id}: starts not accepted: {d.bad_start_answers}")
    refused = [(r.charger_id, r.action) for r in cloud.refused]
    if refused:
        problems.append(f"the cloud refused {len(refused)} overlapping CALLs: {refused[:10]}")
    assert not problems, "\n".join(problems)
    return sessions


# ------------------------------------------------------------------ the site


class PatientCharger(RetryingCharger):
    """A RetryingCharger that, refused with a CALLERROR, keeps the refusal and tries again.

    Real chargers retry a refused transaction message (TransactionMessageAttempts); the tests
    count the refusals (there must be none) instead of ending at the first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refusals: list[tuple[str, str]] = []

    async def call(self, action: str, payload: JsonDict) -> JsonDict:
        while True:
            try:
                return await super().call(action, payload)
            except CallRefused as exc:
                self.refusals.append((action, str(exc)))
                await asyncio.sleep(REFUSED_RETRY_S)  # the charger's retry interval


HANG_GUARD_S = 100.0
"""Whole-test bound of the gateway-process tests: a guard against a hang, not a performance
bound. It must exceed the sum of the bounded waits inside (a process start alone may take
many seconds on a loaded box, and some tests start two: at 28 s the orphan-drain restart test
failed in its second start-up under a 6 % CPU quota) and stay under pytest-timeout's 120 s,
so the process is still stopped and its log kept when it fires."""
REFUSED_RETRY_S = 0.5


@dataclass(slots=True)
class GatewaySite:
    """A gateway process of the tests, with its control socket and its site helpers."""

    process: GatewayProcess
    site: Site
    port: int
    exit_code: int | None = None  # of the SIGTERM at the end

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def status(self) -> JsonDict:
        result: JsonDict = await self.site.control("sync.status")
        return result

    async def settled(self, done: Callable[[JsonDict], bool], timeout: float) -> JsonDict:
        """Poll ``sync.status`` until ``done`` holds; the last status either way (no raise)."""
        status: JsonDict = {}
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    status = await self.status()
                    if done(status):
                        break
                    await asyncio.sleep(0.05)  # polling the daemon's view, not readiness
        return status


@asynccontextmanager
async def gateway_process(
    tmp_path: Path, cloud_url: str, *, call_timeout: float = 5
) -> AsyncIterator[GatewaySite]:
    """``edgegw run`` with the outage test's configuration (chargers CP00 - CP09), started.

    On the way out it is stopped with SIGTERM (``exit_code``); ``process.log_text()`` is its
    log.
    """
    await enrol_cards(tmp_path / "edgegw.db")
    port = free_port()
    config = write_config(tmp_path, port, cloud_url)
    text = config.read_text()
    assert "call_timeout = 5\n" in text
    config.write_text(text.replace("call_timeout = 5\n", f"call_timeout = {call_timeout}\n"))
    notify = NotifySocket(tmp_path / "notify.sock")
    process = GatewayProcess(config, notify=notify, log_path=tmp_path / "edgegw.log")
    site = Site(process, tmp_path / "control.sock")
    gateway = GatewaySite(process, site, port)
    try:
        await process.start()
        yield gateway
    finally:
        try:
            gateway.exit_code = await process.stop()
        finally:
            await site.close()
            notify.close()
