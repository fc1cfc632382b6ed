"""The tasks a connected charger costs the gateway, and that they all end when it leaves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud() as sim:
        yield sim


def tasks_of(charger_id: str) -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if charger_id in t.get_name()}


async def test_the_cloud_link_runs_in_the_sessions_task_and_ends_with_it(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.wait_connected("CP1")
        tasks = tasks_of("CP1")
        names = {t.get_name() for t in tasks}
        assert "charger:CP1/upstream" in names
        assert not [n for n in names if n.startswith("upstream:")]  # no task of its own
    _, pending = await asyncio.wait(tasks, timeout=10)
    assert not pending
    assert not tasks_of("CP1")
    await cloud.wait_disconnected("CP1")
