"""A day without internet, end to end: the cloud misses nothing, the site kept charging.

The gateway runs as a real process (``edgegw run``) on a fixed port, with its store on disk.
Ten chargers (:class:`~tests.sync.driver.RetryingCharger`, a real OCPP-J client that re-sends
whatever got no answer, as OCPP 1.6 asks of transaction messages) boot while the cloud is up;
then the cloud goes away and fifty sessions happen: installer cards are accepted, unknown cards
refused (default policy), blocked and expired cards always refused. During that time:

* the gateway process is SIGKILLed twice, each time the instant a charger has put a transaction
  message on the wire, and started again on the same port; chargers reconnect (without booting
  again) and re-send, payload for payload, what they got no answer for;
* one charger loses power as the answer to its StartTransaction arrives: it boots again, re-sends
  that StartTransaction and must get the same local transaction id (the gateway had committed it:
  it recognises the copy by its digest), then carries on numbering its sessions;
* one charger starts a session with the blocked card straight away (its own cache said yes),
  is answered Blocked and stops it (DeAuthorized): the cloud must still hear of it.

Then the cloud comes back while every charger starts one more session (those messages must
queue behind the outbox). Once the outbox is drained the cloud's record must equal what the
chargers recorded: every session once, in order per charger, payloads unchanged but for the
transaction id, which is the cloud's own in every later message; nothing invented. And the
gateway's own records, read after a clean stop, must hold every session exactly once, closed
(that is what the billing report reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edgegw.auth.authorizer import Authorizer
from edgegw.auth.idtags import CardId
from edgegw.auth.locallist import AuthStatus, Card
from edgegw.config import AuthConfig
from edgegw.control.client import ControlClient
from edgegw.proxy.frames import CallResult, make_call
from edgegw.proxy.link import is_transaction_message
from edgegw.proxy.local import LocalResponder
from edgegw.sim.cloud import SimCloud
from edgegw.store.db import Database
from edgegw.store.outbox import LOCAL_ID_BASE
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner
from tests.sync.driver import JsonDict, RetryingCharger
from tests.sync.gateway_process import GatewayProcess, NotifySocket, free_port
from tests.sync.record import charger_record, check_cloud_has

KNOWN = ("04A1B2C3", "04D5E6F7", "0455667788AABB")  # installer cards, also known to the cloud
UNKNOWN = "04FFEE01"
BLOCKED = "04B10C4D"
EXPIRED = "04E0E0E0"
REFUSED = {UNKNOWN: "Invalid", BLOCKED: "Blocked", EXPIRED: "Expired"}
REFUSED_CYCLE = (UNKNOWN, BLOCKED, EXPIRED)

CHARGERS = tuple(f"CP{i:02d}" for i in range(10))
SESSIONS = 5  # per charger during the outage: 50 in all
REBOOTING = "CP04"  # loses power as its third StartTransaction is answered
DEAUTHORIZED = "CP09"  # starts a session with the blocked card without asking first
KILL_AT = (50, 130)  # SIGKILL when the site has sent this many transaction frames
TX_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})
DAY = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


# ------------------------------------------------------------------ what a charger records


@dataclass(slots=True)
class Session:
    """One session as the charger saw it (compared with the cloud's SimTransaction)."""

    id_tag: str
    meter_start: int
    start_ts: str
    transaction_id: int = 0
    meter_stop: int = 0
    stop_ts: str = ""
    reason: str = ""
    samples: list[JsonDict] = field(default_factory=list)


@dataclass(slots=True)
class Charger:
    """A driven charger with its clock, meter register and expectations."""

    index: int
    driver: RetryingCharger
    register_wh: int
    ticks: int = 0
    sessions: list[Session] = field(default_factory=list)
    expected_auth: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.driver.charger_id

    def now(self) -> str:
        """The charger's clock: a minute per message, distinct per charger (unique payloads)."""
        self.ticks += 1
        at = DAY + timedelta(seconds=self.index * 7 + self.ticks * 61)
        return at.isoformat(timespec="seconds").replace("+00:00", "Z")

    def auth_answers(self) -> list[tuple[str, str, str]]:
        return [
            (a.action, a.payload["idTag"], a.answer["idTagInfo"]["status"])
            for a in self.driver.answered
            if a.action in ("Authorize", "StartTransaction")
        ]


async def status(charger: Charger, value: str) -> None:
    charger.driver.connector_status = value
    await charger.driver.call(
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": value, "timestamp": charger.now()},
    )


async def refused_tap(charger: Charger, tag: str) -> None:
    answer = await charger.driver.call("Authorize", {"idTag": tag})
    charger.expected_auth.append(("Authorize", tag, REFUSED[tag]))
    assert answer["idTagInfo"]["status"] == REFUSED[tag], (charger.id, tag, answer)


def sample(charger: Charger, session: Session) -> JsonDict:
    charger.register_wh += 1375
    value: JsonDict = {
        "timestamp": charger.now(),
        "sampledValue": [
            {
                "value": str(charger.register_wh),
                "context": "Sample.Periodic",
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
            },
            {"value": "7360", "measurand": "Power.Active.Import", "unit": "W"},
        ],
    }
    session.samples.append(value)
    return value


async def charge(charger: Charger, tag: str, *, samples: int = 2, last: bool = False) -> int:
    """Tap, start, send meter values, stop: one session. Returns its transaction id."""
    driver = charger.driver
    answer = await driver.call("Authorize", {"idTag": tag})
    charger.expected_auth.append(("Authorize", tag, "Accepted"))
    assert answer["idTagInfo"]["status"] == "Accepted", (charger.id, tag, answer)
    await status(charger, "Preparing")
    session = Session(tag, charger.register_wh, charger.now())
    boots = driver.boots
    started = await driver.call(
        "StartTransaction",
        {
            "connectorId": 1,
            "idTag": tag,
            "meterStart": session.meter_start,
            "timestamp": session.start_ts,
        },
    )
    charger.expected_auth.append(("StartTransaction", tag, "Accepted"))
    session.transaction_id = int(started["transactionId"])
    charger.sessions.append(session)
    await status(charger, "Charging")
    for _ in range(samples):
        value = sample(charger, session)
        await driver.call(
            "MeterValues",
            {"connectorId": 1, "transactionId": session.transaction_id, "meterValue": [value]},
        )
    charger.register_wh += 412
    session.meter_stop = charger.register_wh
    session.stop_ts = charger.now()
    session.reason = "PowerLoss" if driver.boots > boots else "Local"
    stop: JsonDict = {
        "transactionId": session.transaction_id,
        "idTag": tag,
        "meterStop": session.meter_stop,
        "timestamp": session.stop_ts,
        "reason": session.reason,
    }
    if last:  # the session's readings again, as chargers with SampledDataTxEnded do
        stop["transactionData"] = [*session.samples]
    await driver.call("StopTransaction", stop)
    await status(charger, "Available")
    return session.transaction_id


async def deauthorized_start(charger: Charger, tag: str) -> None:
    """The charger's own cache let ``tag`` start; the answer is Blocked, so it stops at once."""
    session = Session(tag, charger.register_wh, charger.now())
    started = await charger.driver.call(
        "StartTransaction",
        {
            "connectorId": 1,
            "idTag": tag,
            "meterStart": session.meter_start,
            "timestamp": session.start_ts,
        },
    )
    charger.expected_auth.append(("StartTransaction", tag, REFUSED[tag]))
    session.transaction_id = int(started["transactionId"])
    charger.sessions.append(session)
    session.meter_stop = charger.register_wh
    session.stop_ts = charger.now()
    session.reason = "DeAuthorized"
    await charger.driver.call(
        "StopTransaction",
        {
            "transactionId": session.transaction_id,
            "idTag": tag,
            "meterStop": session.meter_stop,
            "timestamp": session.stop_ts,
            "reason": "DeAuthorized",
        },
    )


async def outage_day(charger: Charger) -> None:
    """Five sessions with installer cards, two refused taps, one charger's special."""
    i = charger.index
    for s in range(SESSIONS):
        if s in (0, 3):
            await refused_tap(charger, REFUSED_CYCLE[(i + s) % 3])
        if charger.id == REBOOTING and s == 2:
            charger.driver.power_cut_on_answer(lambda action, _p: action == "StartTransaction")
        await charge(charger, KNOWN[(i + s) % 3], last=s == SESSIONS - 1)
        if charger.id == DEAUTHORIZED and s == 1:
            await deauthorized_start(charger, BLOCKED)


# ------------------------------------------------------------------ the site


class Site:
    """The gateway process and the chargers; kills the gateway at the planned moments."""

    def __init__(self, gateway: GatewayProcess, control_socket: Path) -> None:
        self.gateway = gateway
        self.control_socket = control_socket
        self.tx_frames = 0
        self.kill_at: list[int] = []
        self.kills: list[tuple[str, str, int]] = []  # (charger, action on the wire, frame no.)
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()
        self._tasks = TaskOwner("outage-site")

    def on_sent(self, charger: RetryingCharger, action: str, payload: JsonDict) -> None:
        if action not in TX_ACTIONS:
            return
        self.tx_frames += 1
        if self.kill_at and self.tx_frames >= self.kill_at[0] and self.gateway.up.is_set():
            self.kill_at.pop(0)
            self.kills.append((charger.charger_id, action, self.tx_frames))
            self.gateway.kill()  # the frame just sent is in flight: no answer will come
            self._tasks.spawn(self._restart(), f"restart-{len(self.kills)}")

    async def _restart(self) -> None:
        try:
            await self.gateway.restart_after_kill()
        except BaseException as exc:
            self.failure = exc
            self.failed.set()
            raise

    async def run(self, work: Sequence[Coroutine[Any, Any, None]]) -> None:
        """Run the chargers' coroutines; a failed restart ends the wait with its error."""
        everything = self._tasks.spawn(_gather(work), "chargers")
        failed = self._tasks.spawn(self.failed.wait(), "failed")
        await asyncio.wait({everything, failed}, return_when=asyncio.FIRST_COMPLETED)
        if self.failure is not None:
            raise AssertionError(
                f"restarting the gateway failed: {self.failure!r}\n{self.gateway.log_tail()}"
            )
        failed.cancel()
        everything.result()

    async def control(self, op: str) -> Any:
        async with await ControlClient.connect(self.control_socket) as client:
            return await client.call(op)

    async def wait_links(
        self, predicate: Callable[[JsonDict], bool], what: str, timeout: float = 20
    ) -> JsonDict:
        """Poll ``sync.status`` (the daemon has no event for it) until ``predicate`` holds."""
        result: JsonDict = {}
        try:
            async with asyncio.timeout(timeout):
                while True:
                    result = await self.control("sync.status")
                    if predicate(result):
                        return result
                    await asyncio.sleep(0.05)  # polling the daemon's view, not readiness
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}: {result}") from None

    async def close(self) -> None:
        await self._tasks.close("site closed")


async def _gather(work: Sequence[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*work)


async def enrol_cards(db_path: Path) -> None:
    """The installer's cards, written to the store before the daemon starts."""
    db = await Database.open(db_path)
    try:
        auth = await Authorizer.open(db, AuthConfig())
        try:
            for n, tag in enumerate(KNOWN):
                await auth.add_card(Card(CardId.from_uid(bytes.fromhex(tag)), owner=f"tenant {n}"))
            await auth.add_card(
                Card(
                    CardId.from_uid(bytes.fromhex(BLOCKED)), owner="lost", status=AuthStatus.BLOCKED
                )
            )
            await auth.add_card(
                Card(
                    CardId.from_uid(bytes.fromhex(EXPIRED)),
                    owner="left in 2025",
                    expiry=datetime(2025, 12, 31, tzinfo=UTC),
                )
            )
        finally:
            await auth.close()
    finally:
        await db.close()


def write_config(tmp_path: Path, port: int, cloud_url: str) -> Path:
    chargers = "".join(f'\n[[chargers]]\nid = "{c}"\n' for c in CHARGERS)
    config = tmp_path / "edgegw.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}

[cloud]
url = "{cloud_url}"
reconnect_min_delay = 0.05
reconnect_max_delay = 0.2
call_timeout = 5

[store]
path = "{tmp_path / "edgegw.db"}"

[control]
socket = "{tmp_path / "control.sock"}"
group = ""

[sync]
retry_interval = 0.05
max_retry_interval = 0.2

[auth]
online_timeout = 1

[daemon]
shutdown_timeout = 5
{chargers}"""
    )
    return config


@pytest.fixture
async def notify(tmp_path: Path) -> AsyncIterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


# ------------------------------------------------------------------ the scenario


async def test_outage_with_kills_and_a_reboot_loses_and_invents_nothing(
    tmp_path: Path, notify: NotifySocket
) -> None:
    cloud = SimCloud(accepted_tags=set(KNOWN), blocked_tags={BLOCKED})
    await cloud.start()
    await enrol_cards(tmp_path / "edgegw.db")
    port = free_port()
    gateway = GatewayProcess(
        write_config(tmp_path, port, cloud.url), notify=notify, log_path=tmp_path / "edgegw.log"
    )
    site = Site(gateway, tmp_path / "control.sock")
    url = f"ws://127.0.0.1:{port}/ocpp"
    chargers = [
        Charger(
            i,
            RetryingCharger(cid, url, gateway_up=gateway.up, on_sent=site.on_sent),
            register_wh=1_000_000 + 100_000 * i,
        )
        for i, cid in enumerate(CHARGERS)
    ]
    try:
        await gateway.start()
        async with asyncio.timeout(50):
            await _scenario(site, cloud, chargers)
    finally:
        for charger in chargers:
            await charger.driver.close()
        code = await gateway.stop()
        await site.close()
        await cloud.stop()
    assert code == 0, gateway.log_tail()
    _check_store(tmp_path / "edgegw.db", chargers)
    log = gateway.log_text()
    assert "Traceback" not in log, log
    # The re-sent StartTransaction of the charger that lost power was recognised as a copy.
    assert "StartTransaction sent again; same transaction id" in log


async def _scenario(site: Site, cloud: SimCloud, chargers: list[Charger]) -> None:
    gateway = site.gateway
    # Morning: the chargers boot while the cloud is there.
    await asyncio.gather(*(c.driver.call("Heartbeat", {}) for c in chargers))
    assert {c.driver.boots for c in chargers} == {1}
    assert len(cloud.find("BootNotification", direction="in")) == len(chargers)

    # The internet goes.
    await cloud.stop()
    await site.wait_links(
        lambda s: all(c["cloud_link"] == "offline" for c in s["chargers"]), "links offline"
    )
    site.kill_at = list(KILL_AT)
    await site.run([outage_day(c) for c in chargers])
    assert len(site.kills) == len(KILL_AT), site.kills
    assert gateway.kills == 2 and gateway.starts == 3

    # What each charger was told while the cloud was away.
    outage_ids: list[int] = []
    for charger in chargers:
        assert charger.auth_answers() == charger.expected_auth, charger.id
        outage_ids.extend(s.transaction_id for s in charger.sessions)
    assert len(outage_ids) == len(chargers) * SESSIONS + 1
    assert all(t >= LOCAL_ID_BASE for t in outage_ids)
    assert len(set(outage_ids)) == len(outage_ids), "a local transaction id was given twice"
    rebooted = next(c for c in chargers if c.id == REBOOTING).driver
    assert rebooted.boots == 2 and rebooted.power_cut_struck
    (action, payload, lost), *_ = rebooted.lost_answers
    again = next(a for a in rebooted.answered if a.action == action and a.payload == payload)
    assert again.answer["transactionId"] == lost["transactionId"], (lost, again.answer)

    # The internet comes back while every charger starts one more session.
    await cloud.start()
    await asyncio.gather(*(charge(c, KNOWN[c.index % 3], samples=1) for c in chargers))
    final = await site.wait_links(
        lambda s: s["queued"] == 0 and all(c["cloud_link"] == "online" for c in s["chargers"]),
        "the outbox to drain",
    )
    assert final["parked"] == 0, final

    for charger in chargers:
        assert charger.auth_answers() == charger.expected_auth, charger.id
        expected_sessions = SESSIONS + 1 + (charger.id == DEAUTHORIZED)
        sent = charger.driver.sent
        assert check_cloud_has(cloud, charger.id, sent) == expected_sessions
        assert _cloud_sessions(cloud, charger.id) == [_seen(s) for s in charger.sessions]
    # Some transaction messages went twice (the frames on the wire at each kill, the start
    # whose answer the power cut swallowed), and each got to the cloud once all the same.
    copies = sum(
        _transaction_frames(c.driver.sent) - len(charger_record(c.driver.sent)) for c in chargers
    )
    assert copies >= len(KILL_AT) + 1, copies


def _transaction_frames(sent: list[str]) -> int:
    """How many transaction CALLs left the charger, copies included."""
    frames = [json.loads(raw) for raw in sent]
    return sum(1 for f in frames if is_transaction_message(make_call(f[1], f[2], f[3])))


def _seen(session: Session) -> tuple[Any, ...]:
    return (
        session.id_tag,
        session.meter_start,
        session.start_ts,
        session.meter_stop,
        session.stop_ts,
        session.reason,
        [json.dumps(v, sort_keys=True) for v in session.samples],
    )


def _cloud_sessions(cloud: SimCloud, charger_id: str) -> list[tuple[Any, ...]]:
    """The cloud's transactions of a charger, in the order it numbered them."""
    txs = sorted(
        (t for (cid, _), t in cloud.transactions.items() if cid == charger_id),
        key=lambda t: t.transaction_id,
    )
    # The readings come from the MeterValues and, again, from the last Stop's transactionData.
    return [
        (
            t.id_tag,
            t.meter_start,
            t.start_timestamp,
            t.meter_stop,
            t.stop_timestamp,
            t.reason,
            list(dict.fromkeys(json.dumps(v, sort_keys=True) for v in t.meter_values)),
        )
        for t in txs
    ]


def _check_store(path: Path, chargers: list[Charger]) -> None:
    """After a clean stop: nothing left to send, every local id mapped, every session closed."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        left = db.execute("SELECT COUNT(*) FROM outbox WHERE state != 'delivered'").fetchone()
        unmapped = db.execute(
            "SELECT charger_id, local_id FROM transaction_ids WHERE cloud_id IS NULL"
        ).fetchall()
        rows = db.execute(
            "SELECT charger_id, transaction_id, stopped_at FROM transactions ORDER BY id"
        ).fetchall()
    assert left == (0,)
    assert unmapped == []
    for charger in chargers:
        mine = [(t, s) for c, t, s in rows if c == charger.id]
        assert [t for t, _ in mine] == [s.transaction_id for s in charger.sessions], charger.id
        assert all(s is not None for _, s in mine), (charger.id, mine)


# ------------------------------------------------------------------ the crash window it found


class _AcceptEveryCard:
    """A card authority that accepts everything (the cards are not the point here)."""

    def id_tag_info(self, charger_id: str, id_tag: str, *, literal: bool = False) -> dict[str, Any]:
        return {"status": "Accepted"}

    async def learn(self, charger_id: str, id_tag: str, id_tag_info: dict[str, Any]) -> None:
        return None

    async def answer_cloud(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {}


async def test_a_copy_sent_after_a_crash_between_commit_and_record_is_recorded(
    tmp_path: Path,
) -> None:
    """The window the outage scenario hit: the message was committed to the outbox, the
    process died before the session was recorded, the charger sent the message again.

    The copy is recognised (same local id, not queued twice) and the session is recorded and
    closed all the same, or it would stay open forever and never be billed.
    """
    store = await Store.open(tmp_path / "edgegw.db")
    try:
        responder = LocalResponder(
            store,
            standalone=False,
            heartbeat_interval=300,
            cards=_AcceptEveryCard(),
            clock=lambda: 1_772_000_000.0,
        )
        start = {"connectorId": 1, "idTag": KNOWN[0], "meterStart": 100, "timestamp": "T1"}
        _, local_id = await store.outbox.enqueue_start("CP1", start)  # ... then SIGKILL
        answer, queued = await responder.queue("CP1", make_call("a", "StartTransaction", start))
        assert isinstance(answer, CallResult) and queued is None
        assert answer.payload["transactionId"] == local_id
        answer, queued = await responder.queue("CP1", make_call("b", "StartTransaction", start))
        assert queued is None  # a third copy: still one session
        stop = {"transactionId": local_id, "meterStop": 900, "timestamp": "T2", "reason": "Local"}
        await store.outbox.enqueue("CP1", "StopTransaction", stop)  # ... then SIGKILL
        answer, queued = await responder.queue("CP1", make_call("c", "StopTransaction", stop))
        assert isinstance(answer, CallResult) and queued is None
        rows = await store.transactions("CP1")
        assert [(r.transaction_id, r.meter_start, r.meter_stop, r.stop_reason) for r in rows] == [
            (local_id, 100, 900, "Local")
        ]
        queued_rows, _ = await store.outbox.load("CP1")
        assert [m.action for m in queued_rows] == ["StartTransaction", "StopTransaction"]
    finally:
        await store.close()
