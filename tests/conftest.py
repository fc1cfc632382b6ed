"""Shared fixtures: a real gateway on port 0 and a raw OCPP-J client for frame-level tests."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from edgegw.config import Config, parse_config
from edgegw.daemon import Gateway
from edgegw.sim.meter import SimMeter

GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start gateways with a config built from keyword overrides; all stopped at teardown."""
    running: list[tuple[Gateway, asyncio.Task[None]]] = []
    counter = itertools.count()

    async def start(
        *,
        cloud_url: str | None = None,
        chargers: list[dict[str, Any]] | None = None,
        **sections: dict[str, Any],
    ) -> Gateway:
        number = next(counter)
        data: dict[str, Any] = {
            "server": {"host": "127.0.0.1", "port": 0, **sections.pop("server", {})},
            "store": {"path": str(tmp_path / f"gw{number}.db")},
            "control": {"socket": str(tmp_path / f"gw{number}.sock"), "group": None},
            "chargers": chargers if chargers is not None else [{"id": "CP1"}, {"id": "CP2"}],
            # Frame-level tests count every frame: the list pusher's calls are opt-in here.
            "auth": {"push_local_list": False, **sections.pop("auth", {})},
            **sections,
        }
        if cloud_url is not None:
            data["cloud"] = {
                "url": cloud_url,
                "reconnect_min_delay": 0.05,
                "reconnect_max_delay": 0.2,
                "call_timeout": 5,
                **data.get("cloud", {}),
            }
        gateway = Gateway(parse_config(data))
        task = asyncio.create_task(gateway.run(install_signal_handlers=False))  # noqa: TID251
        started = asyncio.create_task(gateway.started.wait())  # noqa: TID251
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            started.cancel()
            task.result()
        running.append((gateway, task))
        return gateway

    yield start
    for gateway, task in running:
        gateway.shutdown()
        await asyncio.wait_for(task, 15)


def gateway_url(gateway: Gateway) -> str:
    assert gateway.server is not None
    return f"ws://127.0.0.1:{gateway.server.port}/ocpp"


def config_of(gateway: Gateway) -> Config:
    return gateway.config


class RawCharger:
    """A frame-level OCPP-J client: sends exactly what a test writes."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send(self, frame: str | bytes | list[Any]) -> None:
        await self.ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def recv(self, timeout: float = 5) -> list[Any]:
        async with asyncio.timeout(timeout):
            return json.loads(await self.ws.recv())  # type: ignore[no-any-return]

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        message_id = f"raw-{next(self._ids)}"
        await self.send([2, message_id, action, payload])
        answer = await self.recv()
        assert answer[1] == message_id, answer
        return answer


@asynccontextmanager
async def raw_charger(
    url: str,
    charger_id: str,
    *,
    subprotocols: list[str] | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> AsyncIterator[RawCharger]:
    offered = ["ocpp1.6"] if subprotocols is None else subprotocols
    async with connect(
        f"{url}/{charger_id}",
        subprotocols=[Subprotocol(p) for p in offered],
        additional_headers=headers,
        proxy=None,
        **kwargs,
    ) as ws:
        yield RawCharger(ws)


@pytest.fixture
async def meter() -> AsyncIterator[SimMeter]:
    """A site meter on port 0 reading a steady 5 A per phase (modules may define their own)."""
    sim = SimMeter("eastron-sdm630")
    await sim.start()
    sim.set_currents(5.0, 5.0, 5.0)
    yield sim
    await sim.stop()
