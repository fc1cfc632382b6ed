"""The handshake's headers are dropped once read, on both of a charger's connections.

Real gateway, real sockets: the charger's Basic credentials still reach the cloud (read before
they are dropped), on the first connection and on a reconnect, and calls flow after.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from edgegw.auth.passwords import hash_password
from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
PASSWORD = "right-password-123"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"CP1:{PASSWORD}".encode()).decode()}


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(passwords={"CP1": PASSWORD}) as sim:
        yield sim


async def test_headers_dropped_once_read(cloud: SimCloud, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(
        cloud_url=cloud.url, chargers=[{"id": "CP1", "password_hash": hash_password(PASSWORD)}]
    )
    for attempt in range(2):  # the second: a reconnect of the same session
        async with raw_charger(gateway_url(gateway), "CP1", headers=AUTH) as cp:
            assert (await cp.call("BootNotification", BOOT))[0] == 3
            await cloud.wait_connected("CP1")  # the cloud took the charger's credentials
            session = gateway.relays.get("CP1")
            assert session is not None and session.ws is not None
            request = session.ws.request
            assert request is not None and request.path.endswith("/CP1")
            assert not request.headers  # (Authorization, User-Agent... were read, then dropped)
            assert session.ws.response is None
            assert session.upstream is not None
            cloud_ws = session.upstream._ws
            assert cloud_ws is not None and cloud_ws.request is None
            assert cloud_ws.response is not None and cloud_ws.response.status_code == 101
            assert not cloud_ws.response.headers
            assert (await cp.call("Heartbeat", {}))[0] == 3
        assert len(cloud.find("Heartbeat", charger_id="CP1", direction="in")) == attempt + 1


def parsed_handshake(ws: ServerConnection | ClientConnection) -> list[Request | Response]:
    """The handshake objects the connection's protocol parser still holds: its generator parses
    frames for the connection's life, and the request (or response) it parsed first stays in
    its frame's locals."""
    parser = ws.protocol.parser
    frame = getattr(parser, "gi_frame", None)
    if frame is None:
        return []
    return [v for v in frame.f_locals.values() if isinstance(v, (Request, Response))]


async def test_the_headers_go_from_memory_not_only_from_the_connection(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    """The parser keeps the parsed request (response) object: emptying it is what frees the
    headers, and the charger's credentials with them."""
    gateway = await make_gateway(
        cloud_url=cloud.url, chargers=[{"id": "CP1", "password_hash": hash_password(PASSWORD)}]
    )
    async with raw_charger(gateway_url(gateway), "CP1", headers=AUTH) as cp:
        assert (await cp.call("BootNotification", BOOT))[0] == 3
        await cloud.wait_connected("CP1")
        session = gateway.relays.get("CP1")
        assert session is not None and session.ws is not None and session.upstream is not None
        cloud_ws = session.upstream._ws
        assert cloud_ws is not None
        held = parsed_handshake(session.ws) + parsed_handshake(cloud_ws)
        assert held  # (what this test looks at exists)
        assert [dict(h.headers) for h in held] == [{} for _ in held]
        assert (await cp.call("Heartbeat", {}))[0] == 3
