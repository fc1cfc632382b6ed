"""Fixtures for the TUI tests: a real gateway with the live state and the action ops, simulated
chargers, and helpers to wait on the app and read what it shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widget import Widget

from edgegw.control.live_ops import LiveOps
from edgegw.daemon import Gateway
from edgegw.livestate import LiveState
from edgegw.sim.charger import SimCharger
from edgegw.tui.app import CaretakerApp
from edgegw.tui.link import DaemonLink
from edgegw.tui.text import UNICODE
from tests.conftest import GatewayFactory, gateway_url

ALICE = "04A1B2C3"
CHARGERS = [{"id": "CP1", "label": "Bay 1"}, {"id": "CP2", "label": "Bay 2"}]


@dataclass
class Site:
    gateway: Gateway
    live: LiveState
    live_ops: LiveOps | None

    @property
    def socket(self) -> Path:
        return self.gateway.config.control.socket

    async def charger(self, charger_id: str = "CP1") -> SimCharger:
        """A simulated charger, connected, booted and Available."""
        cp = SimCharger(charger_id, gateway_url(self.gateway), connectors=1)
        await cp.connect()
        await cp.boot()
        await cp.status(1, "Available")
        return cp


def attach_live(gateway: Gateway) -> tuple[LiveState, LiveOps | None]:
    """The daemon's own live state (it registers the TUI's ops itself)."""
    live = gateway.live
    assert live is not None and gateway.control is not None
    return live, None


@pytest.fixture
async def make_site(make_gateway: GatewayFactory) -> AsyncIterator[Callable[..., Awaitable[Site]]]:
    sites: list[Site] = []

    async def start(**sections: Any) -> Site:
        sections.setdefault("chargers", CHARGERS)
        sections.setdefault("auth", {"unknown_cards": "reject"})
        gateway = await make_gateway(**sections)
        live, live_ops = attach_live(gateway)
        site = Site(gateway, live, live_ops)
        sites.append(site)
        return site

    yield start
    for site in sites:
        if site.live_ops is not None:
            site.live_ops.close()
        if getattr(site.gateway, "live", None) is not site.live:
            await site.live.close()


def tui_app(
    socket: Path, *, read_only: bool = False, export_dir: Path | None = None
) -> CaretakerApp:
    return CaretakerApp(
        DaemonLink(socket, retry_interval=0.1),
        read_only=read_only,
        glyphs=UNICODE,
        clock=time.time,
        export_dir=export_dir,
        poll_interval=0.5,
        retry_interval=0.1,
    )


def text_of(widget: Widget) -> str:
    """What a Static-like widget shows, as plain text."""
    content: Any = getattr(widget, "content", "")
    plain = getattr(content, "plain", None)
    return plain if isinstance(plain, str) else str(content)


async def until(
    pilot: Pilot[Any], predicate: Callable[[], bool], what: str, timeout: float = 10
) -> None:
    """Let the app run until ``predicate()`` holds; fail saying ``what`` did not happen."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)
