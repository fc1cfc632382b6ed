"""Hostile chargers: the charger-side breaks of the attack run (issue 17), replayed.

Each case runs against a real gateway on port 0 and real sockets: WebSocket clients for what a
charger (or someone posing as one) sends, raw TCP sockets for handshakes that never finish.
Sources are spread over 127.0.0.0/8 (all loopback on Linux). Limits are configured small so
that each flood is small and each test takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response

from edgegw.auth.passwords import hash_password
from edgegw.config import parse_config
from edgegw.daemon import Gateway
from edgegw.logs import setup_logging
from edgegw.proxy.server import CONNECT_BURST, UNKNOWN_BURST
from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, RawCharger, gateway_url, raw_charger
from tests.security.conftest import BOOT, LogWatcher, basic

PASSWORD = "sixteen-chars-pw!"
HASH = hash_password(PASSWORD, log2_n=10)  # cheap to check: the tests count checks, not time
NOW = "2026-01-01T00:00:00Z"
MANY_CONNECTS = {"max_connects_per_minute": 6000}  # tests that reconnect one charger often


def source(n: int, block: int = 0) -> dict[str, Any]:
    """Connect from 127.0.<block>.<n>."""
    return {"local_addr": (f"127.0.{block}.{n}", 0)}


async def login(url: str, charger_id: str, password: str | None, src: int, block: int = 0) -> int:
    """101 if the gateway let the charger in (and answered a Heartbeat), else the HTTP status."""
    headers = basic(charger_id, password) if password is not None else None
    try:
        async with raw_charger(url, charger_id, headers=headers, **source(src, block)) as cp:
            answer = await cp.call("Heartbeat", {})
            assert answer[0] == 3
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@contextlib.asynccontextmanager
async def gateway_on(db: Path, tmp_path: Path, **sections: Any) -> AsyncIterator[Gateway]:
    """A gateway on the database ``db`` (to restart one on the same records)."""
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, **sections.pop("server", {})},
        "store": {"path": str(db)},
        "control": {"socket": str(tmp_path / f"{db.stem}.sock"), "group": None},
        "auth": {"push_local_list": False},
        **sections,
    }
    gateway = Gateway(parse_config(data))
    async with asyncio.TaskGroup() as group:
        task = group.create_task(gateway.run(install_signal_handlers=False))
        started = group.create_task(gateway.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        assert not task.done(), "the gateway did not start"
        try:
            yield gateway
        finally:
            gateway.shutdown()


@pytest.fixture
def logs() -> Iterator[LogWatcher]:
    """The ``edgegw`` log lines of the test (tests/security's watcher, at info)."""
    watcher = LogWatcher()
    root = logging.getLogger("edgegw")
    previous = root.level
    root.setLevel(logging.INFO)
    root.addHandler(watcher)
    yield watcher
    root.removeHandler(watcher)
    root.setLevel(previous)


# ---------------------------------------------------------------- 4. slow handshakes


class Slowloris:
    """Keeps ``per_address`` TCP connections open from each address without sending a byte,
    opening a new one whenever the gateway drops one (at most ``rounds`` times each)."""

    def __init__(self, port: int, addresses: list[str], per_address: int, rounds: int) -> None:
        self.port = port
        self.addresses = addresses
        self.per_address = per_address
        self.rounds = rounds
        self.opened = 0
        self.dropped = 0
        self._first = asyncio.Event()
        self._waiting = len(addresses) * per_address

    async def _hold(self, address: str) -> None:
        for _ in range(self.rounds):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(address, 0)
            )
            self.opened += 1
            if self._waiting:
                self._waiting -= 1
                if not self._waiting:
                    self._first.set()
            try:
                await reader.read(1)
            except ConnectionResetError:
                pass
            finally:
                writer.close()
            self.dropped += 1

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._hold(address))
                for address in self.addresses
                for _ in range(self.per_address)
            ]
            await self._first.wait()  # every slot has been tried once
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()


async def test_slow_handshakes_from_two_addresses_do_not_lock_out_chargers(
    make_gateway: GatewayFactory, logs: LogWatcher
) -> None:
    gateway = await make_gateway(
        server={"max_pending_handshakes": 8, "handshake_timeout": 2, **MANY_CONNECTS},
        chargers=[{"id": "CP1", "password_hash": HASH}, {"id": "CP2", "password_hash": HASH}],
    )
    assert gateway.server is not None
    url = gateway_url(gateway)
    assert await login(url, "CP1", PASSWORD, 5) == 101  # CP1 is known from here on
    attack = Slowloris(gateway.server.port, ["127.0.0.20", "127.0.0.21"], 4, rounds=40)
    async with attack.running():
        # Two hosts asked for all eight handshake slots, as they reopen what is dropped...
        statuses = [await login(url, "CP1", PASSWORD, 5) for _ in range(10)]
        # ...yet the known charger got in every time, and so does one never seen before.
        assert statuses == [101] * 10
        assert await login(url, "CP2", PASSWORD, 6) == 101
    await logs.wait_for("(server.max_pending_per_address)")


async def test_a_handshake_flood_from_many_addresses_does_not_lock_out_known_chargers(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(
        server={"max_pending_handshakes": 8, "handshake_timeout": 2, **MANY_CONNECTS},
        chargers=[{"id": "CP1", "password_hash": HASH}],
    )
    assert gateway.server is not None
    url = gateway_url(gateway)
    assert await login(url, "CP1", PASSWORD, 5) == 101
    addresses = [f"127.0.1.{n}" for n in range(1, 41)]  # 40 sources for 8 slots
    attack = Slowloris(gateway.server.port, addresses, 1, rounds=3)
    async with attack.running():
        assert [await login(url, "CP1", PASSWORD, 5) for _ in range(5)] == [101] * 5
    assert attack.dropped > 0  # the flood did fill the budget


# ---------------------------------------------------------------- 5 and 6. password guessing


async def guesses(url: str, charger_id: str, sources: range, block: int = 2) -> list[int]:
    """One wrong password from each source, in turn: the statuses."""
    return [await login(url, charger_id, f"guess-{n}", n, block) for n in sources]


async def test_guessing_from_rotating_addresses_never_locks_out_the_right_password(
    tmp_path: Path,
) -> None:
    db = tmp_path / "gw.db"
    chargers = [{"id": "CP1", "password_hash": HASH}]
    server = {"failed_logins_before_backoff": 1, "login_backoff_max": 60}
    async with gateway_on(db, tmp_path, server=server, chargers=chargers) as gateway:
        url = gateway_url(gateway)
        assert await login(url, "CP1", PASSWORD, 5) == 101
        statuses = await guesses(url, "CP1", range(10, 16))
        assert statuses[0] == 401 and 429 in statuses  # the guessers are held back...
        assert await login(url, "CP1", PASSWORD, 5) == 101  # ...the charger is not
    # A restart forgets the verified password; the charger's address is read back.
    async with gateway_on(db, tmp_path, server=server, chargers=chargers) as gateway:
        url = gateway_url(gateway)
        statuses = await guesses(url, "CP1", range(20, 26))
        assert statuses[0] == 401 and 429 in statuses
        assert await login(url, "CP1", PASSWORD, 5) == 101


async def test_concurrent_guesses_are_counted_before_they_are_checked(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(
        server={"failed_logins_before_backoff": 3, "max_pending_handshakes": 100},
        chargers=[{"id": "CP1", "password_hash": HASH}],
    )
    url = gateway_url(gateway)
    statuses = await asyncio.gather(*(login(url, "CP1", f"guess-{n}", n, 3) for n in range(1, 61)))
    counts = Counter(statuses)
    # Three free failures and the attempt that starts the back-off: four checks, not sixty.
    assert counts[401] <= 4, counts
    assert counts[429] >= 56, counts


async def test_junk_from_many_addresses_does_not_wipe_an_identity_back_off(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(
        server={"failed_logins_before_backoff": 1, "login_backoff_max": 60},
        chargers=[{"id": "CP1", "password_hash": HASH}],
    )
    assert gateway.server is not None
    gateway.server._logins._max_keys = 50  # the address table is bounded (10,000 by default)
    url = gateway_url(gateway)
    assert 429 in await guesses(url, "CP1", range(1, 5))
    for n in range(1, 61):  # 60 junk requests from 60 other addresses fill the address table
        assert await login(url, "NOBODY", None, n, 4) == 404
    assert await login(url, "CP1", "guess-x", 99, 2) == 429


# ---------------------------------------------------------------- 7. reconnect loops


class CountingCloud:
    """A cloud that accepts every connection and counts them per path."""

    def __init__(self) -> None:
        self.connections: Counter[str] = Counter()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.connections[request.path] += 1
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                frame = json.loads(raw)
                if frame[0] == 2:  # a Heartbeat's answer does for every call here
                    await ws.send(json.dumps([3, frame[1], {"currentTime": NOW}]))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        async with serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            process_request=self._process_request,
        ) as server:
            port = server.sockets[0].getsockname()[1]
            yield f"ws://127.0.0.1:{port}/ocpp"


async def test_a_reconnect_loop_is_refused_at_the_handshake(
    make_gateway: GatewayFactory, logs: LogWatcher
) -> None:
    cloud = CountingCloud()
    async with cloud.running() as cloud_url:
        gateway = await make_gateway(
            cloud_url=cloud_url,
            server={"max_connects_per_minute": 6},
            chargers=[{"id": "CP1"}, {"id": "CP2"}],
        )
        url = gateway_url(gateway)
        statuses = [await login(url, "CP1", None, 1) for _ in range(3 * CONNECT_BURST)]
        assert statuses[:CONNECT_BURST] == [101] * CONNECT_BURST
        assert statuses.count(101) <= CONNECT_BURST + 1 and statuses[-1] == 429
        await logs.wait_for("refused CP1 from 127.0.0.1: it reconnects more often than 6 times")
        assert await login(url, "CP2", None, 2) == 101  # another charger is not affected
    assert cloud.connections["/ocpp/CP1"] <= CONNECT_BURST + 1


async def test_made_up_identities_are_counted_per_address(
    make_gateway: GatewayFactory, logs: LogWatcher
) -> None:
    cloud = CountingCloud()
    async with cloud.running() as cloud_url:
        gateway = await make_gateway(
            cloud_url=cloud_url,
            server={
                "allow_unknown_chargers": True,
                "max_connects_per_minute": 6,
                "max_connections_per_address": 4,
            },
        )
        url = gateway_url(gateway)
        statuses = [await login(url, f"ANY{n}", None, 1) for n in range(3 * CONNECT_BURST)]
        assert statuses.count(101) <= CONNECT_BURST + 1 and statuses[-1] == 429
        await logs.wait_for("unconfigured identities from 127.0.0.1 connect more often than")
        assert await login(url, "CP1", None, 1) == 101  # a configured charger is counted apart
        assert await login(url, "ANY-ELSE", None, 2) == 101  # and so is another address
    assert sum(cloud.connections.values()) <= CONNECT_BURST + 3


async def test_reconnecting_buys_no_fresh_message_allowance(
    make_gateway: GatewayFactory, logs: LogWatcher
) -> None:
    gateway = await make_gateway(
        server={"max_messages_per_second": 1, "message_burst": 10, "flood_close_after": 30}
    )
    url = gateway_url(gateway)
    async with raw_charger(url, "CP1") as first:
        for _ in range(10):  # the whole burst
            assert (await first.call("Heartbeat", {}))[0] == 3
    assert logs.count("sends more than") == 0
    async with raw_charger(url, "CP1") as second:
        assert (await second.call("Heartbeat", {}))[0] == 3
        await logs.wait_for("CP1 from 127.0.0.1 sends more than 1 messages/s", timeout=3)


# ---------------------------------------------------------------- 8. log flooding and forging


async def test_outside_data_is_logged_short_and_on_one_line(
    make_gateway: GatewayFactory, logs: LogWatcher
) -> None:
    gateway = await make_gateway()
    url = gateway_url(gateway)
    long_path = "x" * 5000 + "%0A%0Dforged:%20refused%20CP1"
    with pytest.raises(InvalidStatus):
        async with raw_charger(url.removesuffix("/ocpp") + "/" + long_path, "y"):
            pass
    line = await logs.wait_for("no charger identity in path")
    assert len(line) < 300 and "\n" not in line


# ---------------------------------------------------------------- 9. answers are not a flood


async def answer_every_call(cp: RawCharger) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for raw in cp.ws:
            frame = json.loads(raw)
            if frame[0] == 2:
                await cp.send([3, frame[1], {"configurationKey": [], "unknownKey": []}])


async def test_answering_the_clouds_calls_quickly_is_not_a_flood(
    make_gateway: GatewayFactory, logs: LogWatcher
) -> None:
    async with SimCloud() as cloud:
        gateway = await make_gateway(
            cloud_url=cloud.url,
            server={"max_messages_per_second": 2, "message_burst": 3, "flood_close_after": 0.3},
        )
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            assert (await cp.call("BootNotification", BOOT))[0] == 3
            await cloud.wait_connected("CP1")
            async with asyncio.TaskGroup() as group:
                answering = group.create_task(answer_every_call(cp))
                for _ in range(30):
                    await cloud.call("CP1", "GetConfiguration", {}, timeout=5)
                answering.cancel()
            assert cp.ws.close_code is None
            assert logs.count("sends more than") == 0
            # Answers to nothing are still counted.
            for n in range(10):
                await cp.send([3, f"nothing-{n}", {}])
            await logs.wait_for("CP1 from 127.0.0.1 sends more than 2 messages/s", timeout=3)


# ---------------------------------------------------------------- 12. crashes are logged


@pytest.fixture
def daemon_logging() -> Iterator[None]:
    """The daemon's logging set-up (libraries quietened), undone afterwards."""
    names = ("", "edgegw.websockets", *(f"edgegw.websockets.{n}" for n in ("server", "client")))
    saved = {
        name: (logger.level, list(logger.handlers), list(logger.filters))
        for name in names
        for logger in [logging.getLogger(name)]
    }
    setup_logging("info", journal=False)
    yield
    for name, (level, handlers, filters) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.filters[:] = filters


async def test_a_crashing_connection_handler_is_logged_once_with_the_charger(
    make_gateway: GatewayFactory, daemon_logging: None, logs: LogWatcher
) -> None:
    gateway = await make_gateway()
    with contextlib.closing(sqlite3.connect(gateway.config.store.path)) as db:
        db.execute("DROP TABLE outbox")  # a damaged database: every session start fails
    url = gateway_url(gateway)
    for _ in range(3):
        async with raw_charger(url, "CP1") as cp:
            with pytest.raises(ConnectionClosed):
                await cp.recv()
            assert cp.ws.close_code == 1011
    line = await logs.wait_for("the connection of CP1 from 127.0.0.1 failed")
    assert "no such table: outbox" in line
    assert logs.count("no such table") == 1  # the same failure again is counted, not repeated


# ---------------------------------------------------------------- 14. escaped secret keys


async def test_an_escaped_authorization_key_is_masked_in_the_frame_log(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    cloud = CountingCloud()
    sent: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handle(ws: ServerConnection) -> None:
        await sent.put(ws)
        await ws.wait_closed()

    cloud._handle = handle  # type: ignore[method-assign]
    async with cloud.running() as cloud_url:
        gateway = await make_gateway(cloud_url=cloud_url, logging={"frames": True})
        with caplog.at_level(logging.DEBUG, logger="edgegw.proxy"):
            async with raw_charger(gateway_url(gateway), "CP1") as cp:
                upstream = await asyncio.wait_for(sent.get(), 5)
                frame = (
                    '[2,"c1","ChangeConfiguration",'
                    '{"key":"Authorization\\u004bey","value":"n3w-s3cret-key!"}]'
                )
                await upstream.send(frame)
                received = await cp.recv()
                assert received[3]["value"] == "n3w-s3cret-key!"  # relayed as it was
    frame_lines = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("edgegw.proxy") and "ChangeConfiguration" in r.getMessage()
    ]
    assert frame_lines
    assert not any("n3w-s3cret-key!" in line for line in frame_lines), frame_lines


# ---------------------------------------------------------------- 16. unknown identities


async def test_a_flood_of_unknown_identities_is_recorded_and_logged_bounded(
    make_gateway: GatewayFactory, logs: LogWatcher
) -> None:
    gateway = await make_gateway()
    assert gateway.store is not None
    url = gateway_url(gateway)
    for n in range(1, 41):
        assert await login(url, f"FAKE{n:03d}", None, n, 5) == 404
    pending = [row for row in await gateway.store.chargers() if row.state == "pending"]
    assert 1 <= len(pending) <= UNKNOWN_BURST + 1
    assert logs.count("refused unknown charger") == 1
    await logs.wait_for("not recording all unknown charger identities")
