"""A 2.x charger on a site that takes it (a cloud, no load capping): a 2.0.1 station without a
local list is not pushed one, a 2.1 charger's meter values are not managed, and that is said
once, not retried as a failure. Real sockets on port 0."""

from __future__ import annotations

from typing import Any

import pytest

from edgegw.energy.sampling import MeterSampling
from edgegw.ocpp.events import ChargerConnected
from edgegw.sim.charger201 import SimCharger201
from tests.conftest import GatewayFactory, gateway_url
from tests.energy.test_sampling import MODELS, site_config
from tests.v201.test_relay201 import CHARGERS, Cloud201, cloud201  # noqa: F401


async def test_no_local_list_is_pushed_to_a_2_x_charger(
    cloud201: Cloud201,  # noqa: F811
    make_gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = await make_gateway(
        cloud_url=cloud201.url, chargers=CHARGERS, auth={"push_local_list": True}
    )
    pusher = gateway.list_pusher
    assert pusher is not None
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        await cs.heartbeat()
        status = await pusher.wait_idle("CS201", timeout=10)
        assert status.connected
        assert status.capabilities is not None and not status.capabilities.supported
        # a 2.0.1 station is asked its LocalAuthListCtrlr (auth.listpush201): this one has none
        assert status.capabilities.reason.startswith("no LocalAuthListCtrlr")
        assert status.last_error is None
        assert "local list update failed" not in caplog.text


async def test_meter_values_of_a_2_x_charger_are_not_configured() -> None:
    calls: list[str] = []

    async def call(charger_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        calls.append(action)
        raise AssertionError("no call to a 2.x charger")

    sampling = MeterSampling(site_config(), MODELS, call)
    try:
        sampling.handle(ChargerConnected(charger_id="CP1", at=0.0, version="ocpp2.1"))
        result = await sampling.wait_configured("CP1", timeout=5)
        assert result.measurands is None
        assert result.refused == {"OCPP": "OCPP 2.x: meter values not configured yet"}
        assert calls == []
    finally:
        await sampling.close()
