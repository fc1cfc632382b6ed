"""The simulated 2.0.1 station closing while a CSMS call is on its way: the call meets a closed
socket and goes unanswered; the station's read task does not crash (it did: close() forgot the
socket before closing it, so answering raised in the read task)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from edgegw.sim.charger201 import SimCharger201


async def test_a_call_arriving_while_the_station_closes_does_not_crash_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent = asyncio.Event()

    async def csms(ws: ServerConnection) -> None:
        await ws.send(json.dumps([2, "c1", "Reset", {"type": "Immediate"}]))
        sent.set()
        await ws.wait_closed()

    async with serve(csms, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp2.0.1")]) as server:
        port = server.sockets[0].getsockname()[1]
        station = SimCharger201("CS", f"ws://127.0.0.1:{port}/ocpp")
        with caplog.at_level(logging.ERROR):
            await station.connect()
            await sent.wait()
            await station.close()  # the Reset is read while the close handshake runs
    assert not [r for r in caplog.records if "crashed" in r.getMessage()]
    assert station.calls_received == [("Reset", {"type": "Immediate"})]  # read, not answered
