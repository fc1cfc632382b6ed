"""Limits under attack, against a real gateway: each holds, logs once, and spares the others."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from edgegw.auth.passwords import hash_password
from tests.conftest import GatewayFactory, RawCharger, gateway_url, raw_charger
from tests.security.conftest import BOOT, LogWatcher, Pki, basic, start_tls_gateway

PASSWORD = "sixteen-chars-pw!"
HASH = hash_password(PASSWORD, log2_n=10)


def source(n: int) -> dict[str, Any]:
    """Connect from 127.0.0.<n> (the whole 127/8 is loopback on Linux)."""
    return {"local_addr": (f"127.0.0.{n}", 0)}


@contextlib.asynccontextmanager
async def silent_sockets(
    port: int, count: int, first_source: int, *, same_source: bool = False
) -> AsyncIterator[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    """TCP connections that never send a byte (slowloris)."""
    opened = []
    try:
        for i in range(count):
            host = f"127.0.0.{first_source if same_source else first_source + i}"
            opened.append(await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0)))
        yield opened
    finally:
        for _, writer in opened:
            writer.close()


async def dropped(reader: asyncio.StreamReader, timeout: float = 5) -> bool:
    """True once the gateway has closed this connection without a word."""
    try:
        async with asyncio.timeout(timeout):
            return await reader.read(1) == b""
    except ConnectionResetError:
        return True


async def heartbeat_ok(cp: RawCharger) -> None:
    answer = await cp.call("Heartbeat", {})
    assert answer[0] == 3 and "currentTime" in answer[2]


async def test_allowed_networks(make_gateway: GatewayFactory, logs: LogWatcher) -> None:
    gateway = await make_gateway(server={"allowed_networks": ["127.0.0.1/32"]})
    url = gateway_url(gateway)
    with pytest.raises((OSError, InvalidHandshake)) as info:
        async with raw_charger(url, "CP1", **source(2)):
            pass
    assert not isinstance(info.value, InvalidStatus)  # dropped before any HTTP
    await logs.wait_for(
        "refused connection from 127.0.0.2: 127.0.0.2 is not in server.allowed_networks"
    )
    async with raw_charger(url, "CP1") as cp:
        await heartbeat_ok(cp)


async def test_connections_per_address(make_gateway: GatewayFactory, logs: LogWatcher) -> None:
    gateway = await make_gateway(server={"max_connections_per_address": 3})
    assert gateway.server is not None
    async with (
        raw_charger(gateway_url(gateway), "CP1") as legit,
        silent_sockets(gateway.server.port, 4, 2, same_source=True) as sockets,
    ):
        assert await dropped(sockets[3][0])  # the fourth from 127.0.0.2
        await logs.wait_for("127.0.0.2 already has 3 connection(s)")
        assert gateway.server.guard.connections_from("127.0.0.2") == 3
        await heartbeat_ok(legit)  # another address is not affected
        async with raw_charger(gateway_url(gateway), "CP2") as other:
            await heartbeat_ok(other)


async def test_slow_handshakes_on_the_tls_port(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    gateway = await start_tls_gateway(
        make_gateway,
        pki,
        server={"security_profile": 2, "max_pending_handshakes": 4, "handshake_timeout": 1.0},
        chargers=[{"id": "CP1", "password_hash": HASH}],
    )
    assert gateway.server is not None
    port = gateway.server.port
    url = f"wss://127.0.0.1:{port}/ocpp"
    auth = basic("CP1", PASSWORD)
    async with raw_charger(url, "CP1", ssl=pki.charger_context(), headers=auth) as legit:
        async with silent_sockets(port, 5, 10) as sockets:
            # Four pending handshakes fill the budget; the fifth takes the oldest one's slot.
            assert await dropped(sockets[0][0], timeout=0.9)
            await logs.wait_for(
                "4 handshakes pending (server.max_pending_handshakes): dropped the oldest from "
                "127.0.0.10"
            )
            await heartbeat_ok(legit)  # an open connection is not a pending handshake
            # The silent ones are dropped when the handshake budget runs out...
            for reader, _ in sockets[1:]:
                assert await dropped(reader)
            await logs.wait_for("TLS handshake not completed in time")
        # ...and a charger can connect again.
        assert gateway.server.guard.pending == 0
        async with raw_charger(url, "CP1", ssl=pki.charger_context(), headers=auth) as again:
            await heartbeat_ok(again)


async def test_slow_http_upgrade_times_out(make_gateway: GatewayFactory, logs: LogWatcher) -> None:
    gateway = await make_gateway(server={"handshake_timeout": 0.3})
    assert gateway.server is not None
    async with silent_sockets(gateway.server.port, 1, 2) as sockets:
        reader, writer = sockets[0]
        writer.write(b"GET /ocpp/CP1 HTTP/1.1\r\nHost: x\r\n")  # and never finishes
        assert await dropped(reader)
    await logs.wait_for("dropped 127.0.0.2: no complete opening handshake within 0.3 s")


async def test_failed_logins_back_off_per_address_and_identity(
    make_gateway: GatewayFactory, logs: LogWatcher
) -> None:
    gateway = await make_gateway(
        server={"failed_logins_before_backoff": 2},
        chargers=[{"id": "CP1", "password_hash": HASH}, {"id": "CP2", "password_hash": HASH}],
    )
    url = gateway_url(gateway)
    async with raw_charger(url, "CP1", headers=basic("CP1", PASSWORD), **source(4)):
        pass  # CP1 connected once before the attack

    async def attempt(charger_id: str, password: str, src: int) -> int:
        try:
            async with raw_charger(
                url, charger_id, headers=basic(charger_id, password), **source(src)
            ):
                return 101
        except InvalidStatus as exc:
            if exc.response.status_code == 429:
                assert int(exc.response.headers["Retry-After"]) >= 1
            return exc.response.status_code

    statuses = [await attempt("CP1", f"guess-{i}", 2) for i in range(4)]
    assert statuses == [401, 401, 401, 429]
    await logs.wait_for("refused source 127.0.0.2: too many failed logins")
    # Another address guessing the same identity meets the identity's back-off.
    assert await attempt("CP1", "guess-x", 3) == 429
    await logs.wait_for("refused charger CP1: too many failed logins")
    # The real CP1, whose password was verified before, is not locked out...
    assert await attempt("CP1", PASSWORD, 4) == 101
    # ...nor is another charger.
    assert await attempt("CP2", PASSWORD, 5) == 101


async def test_message_flood_is_paced_then_closed(
    make_gateway: GatewayFactory, logs: LogWatcher
) -> None:
    gateway = await make_gateway(
        server={"max_messages_per_second": 50, "message_burst": 20, "flood_close_after": 0.3}
    )
    url = gateway_url(gateway)
    frame = json.dumps([2, "x", "Heartbeat", {}])
    async with raw_charger(url, "CP2") as legit, raw_charger(url, "CP1") as flooder:

        async def flood() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await flooder.ws.send(frame)
                    # The flooder shares this event loop with the gateway; in real life it is
                    # another machine. Yield so that only the gateway's limits are measured.
                    await asyncio.sleep(0)

        async def drain() -> None:  # reads the answers, so that it sees the close
            with contextlib.suppress(ConnectionClosed):
                async for _ in flooder.ws:
                    pass

        async with asyncio.TaskGroup() as group:
            group.create_task(flood())
            group.create_task(drain())
            for _ in range(5):  # the legitimate charger is answered throughout
                async with asyncio.timeout(1):
                    await heartbeat_ok(legit)
            await logs.wait_for("CP1 from 127.0.0.1 sends more than 50 messages/s")
            async with asyncio.timeout(5):
                await flooder.ws.wait_closed()
        assert flooder.ws.close_code == 1008
        await logs.wait_for("stayed above 50 messages/s for 0.3 s (server.flood_close_after)")
        await heartbeat_ok(legit)


async def test_a_burst_within_the_limit_is_not_punished(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(
        server={"max_messages_per_second": 200, "message_burst": 30, "flood_close_after": 2}
    )
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        for i in range(60):  # twice the burst: paced for a moment, never closed
            await cp.send([2, f"b{i}", "Heartbeat", {}])
        answers = [await cp.recv() for _ in range(60)]
        assert [a[1] for a in answers] == [f"b{i}" for i in range(60)]
        await heartbeat_ok(cp)


async def test_oversized_frame(make_gateway: GatewayFactory, logs: LogWatcher) -> None:
    gateway = await make_gateway(server={"max_message_size": 1024})
    url = gateway_url(gateway)
    async with raw_charger(url, "CP2") as other, raw_charger(url, "CP1") as cp:
        await cp.send([2, "big", "DataTransfer", {"vendorId": "v", "data": "x" * 2000}])
        with pytest.raises(ConnectionClosed) as info:
            await cp.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        await logs.wait_for("closed CP1 from 127.0.0.1: a message exceeded server.max_message_size")
        await heartbeat_ok(other)
        assert (await other.call("BootNotification", BOOT))[0] == 3
