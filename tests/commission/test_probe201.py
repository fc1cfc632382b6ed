"""``chargers probe`` of an OCPP 2.0.1 station: GetBaseReport, its NotifyReport parts read into
the probe's result. The reading of one NotifyReport (pure), then the probe over real sockets:
a real daemon relaying to a CSMS written on the ``ocpp`` library's v201 package, a simulated
2.0.1 station that answers GetBaseReport and sends its report in parts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from ocpp.messages import get_validator
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from edgegw.cli.commission import _render_probe
from edgegw.control import ControlClient, RemoteError
from edgegw.ocpp.events import CallExchanged, DeviceReported
from edgegw.ocpp.interpret201 import interpret201
from edgegw.sim.charger201 import SimCharger201
from edgegw.store.capabilities import CapabilityStore
from tests.commission.test_devicemodel import station_reports
from tests.conftest import GatewayFactory, gateway_url


def test_a_notify_report_part_is_read_as_it_was_sent() -> None:
    part = station_reports()[1]
    heard, reported = interpret201("CS", "NotifyReport", part, {}, 5.0)
    assert heard == CallExchanged(charger_id="CS", at=5.0, action="NotifyReport")
    assert reported == DeviceReported(
        charger_id="CS",
        at=5.0,
        request_id=7,
        seq_no=0,
        tbc=True,
        report_data=tuple(part["reportData"]),
    )
    last = interpret201("CS", "NotifyReport", station_reports()[0], {}, 5.0)[1]
    assert isinstance(last, DeviceReported) and (last.seq_no, last.tbc) == (2, False)


@pytest.mark.parametrize(
    "request_",
    [
        {"seqNo": 0, "generatedAt": "x"},
        {"requestId": -1, "seqNo": 0},
        {"requestId": 1, "seqNo": "0"},
        {"requestId": True, "seqNo": 0},
    ],
)
def test_a_part_without_its_place_gives_no_event(request_: Any) -> None:
    assert len(interpret201("CS", "NotifyReport", request_, {}, 1.0)) == 1


def test_entries_that_are_no_objects_are_left_out() -> None:
    request = {"requestId": 3, "seqNo": 0, "reportData": [1, {"component": {}}, "x"]}
    (_, reported) = interpret201("CS", "NotifyReport", request, {}, 1.0)
    assert isinstance(reported, DeviceReported)
    assert reported.report_data == ({"component": {}},) and reported.tbc is False


# ------------------------------------------------------------------ over real sockets


class _Csms(ChargePoint):  # type: ignore[misc]  # ocpp ships no type information
    """A 2.0.1 CSMS from the ocpp library's handlers that takes the station's reports."""

    def __init__(self, charger_id: str, connection: Any, reports: list[dict[str, Any]]) -> None:
        super().__init__(charger_id, connection)
        self.reports = reports

    @on("BootNotification")
    def on_boot(self, **_: Any) -> Any:
        return call_result.BootNotification(
            current_time="2026-12-07T10:00:00Z", interval=300, status="Accepted"
        )

    @on("NotifyReport")
    def on_report(self, **kwargs: Any) -> Any:
        self.reports.append(kwargs)
        return call_result.NotifyReport()


@pytest.fixture
async def csms() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The CSMS's URL and the reports it got."""
    reports: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        peer = _Csms(ws.request.path.rsplit("/", 1)[-1], ws, reports)
        with contextlib.suppress(ConnectionClosed):
            await peer.start()

    async with serve(handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp2.0.1")]) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/csms", reports


def _model_entries() -> list[dict[str, Any]]:
    """The test station's device model (split over parts), valid NotifyReport reportData."""
    return [
        e for report in station_reports() if report["requestId"] == 7 for e in report["reportData"]
    ]


async def test_probe_of_a_201_station_reads_its_device_model(
    make_gateway: GatewayFactory, csms: tuple[str, list[dict[str, Any]]]
) -> None:
    url, cloud_reports = csms
    gateway = await make_gateway(cloud_url=url, chargers=[{"id": "CS201"}])
    station = SimCharger201(
        "CS201", gateway_url(gateway), report_data=_model_entries(), report_part_size=5
    )
    async with station, await ControlClient.connect(gateway.config.control.socket) as client:
        await station.boot()
        result = await client.call("chargers.probe", charger="CS201")
    (asked,) = [p for a, p in station.calls_received if a == "GetBaseReport"]
    get_validator(2, "GetBaseReport", "2.0.1").validate(asked)
    assert asked == {"requestId": result["report_request_id"], "reportBase": "FullInventory"}
    sent = [json.loads(t)[3] for t in station.sent if json.loads(t)[2:3] == ["NotifyReport"]]
    assert len(sent) == 5  # 21 entries, 5 a part
    for part in sent:
        get_validator(2, "NotifyReport", "2.0.1").validate(part)

    assert result["ocpp_version"] == "ocpp2.0.1"
    assert result["report"] == {"parts": 5, "complete": True, "skipped": 0, "missing": None}
    assert result["smart_charging"]["max_stack_level"] == 8
    assert result["local_list"]["max_length"] == 1000
    assert result["meter_values"]["samples_current"] is True
    assert [e["evse"] for e in result["evses"]] == [1, 2]
    assert result["missing_keys"] == []
    assert result["profile"]["fits"] is None  # vendor edgegw, model Sim201: no shipped profile
    rows = {r["variable"]: r for r in result["variables"]}
    assert rows["EVSE@evse1.Power"]["max_limit"] == 22000
    assert rows["SecurityCtrlr.BasicAuthPassword"]["value"] == "(hidden)"
    assert result["keys"]["SmartChargingCtrlr.RateUnit"] == {"value": "A,W", "readonly": True}
    toml = result["proposed_profile"]["toml"]
    assert "max_stack_level = 8" in toml and "GetBaseReport" in toml
    assert len(cloud_reports) == 5  # the station's own calls, relayed as they are
    assert gateway.store is not None
    recorded = await CapabilityStore(gateway.store.db).probe("CS201")
    assert recorded is not None and recorded["report"]["complete"] is True
    text = _render_probe(result)
    assert "Device model:     OCPP 2.0.1, 5 report part(s), complete" in text


async def test_a_report_that_does_not_complete_says_what_is_missing(
    make_gateway: GatewayFactory,
) -> None:
    """A cloudless site answers the station's NotifyReports itself; the station loses part 1."""
    gateway = await make_gateway(chargers=[{"id": "CS201"}])
    asked: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def base_report(payload: dict[str, Any]) -> dict[str, Any]:
        asked.set_result(payload["requestId"])
        return {"status": "Accepted"}

    station = SimCharger201("CS201", gateway_url(gateway), handlers={"GetBaseReport": base_report})
    parts = station_reports()
    async with station, await ControlClient.connect(gateway.config.control.socket) as client:
        await station.boot()
        async with asyncio.TaskGroup() as group:
            probe = group.create_task(
                client.call("chargers.probe", charger="CS201", report_timeout=1)
            )
            request_id = await asyncio.wait_for(asked, 10)
            for part in (parts[1], parts[0]):  # seqNo 0, then 2 (tbc false); 1 never comes
                await station.call("NotifyReport", {**part, "requestId": request_id})
        result = probe.result()
    assert result["report"]["complete"] is False and result["report"]["parts"] == 2
    assert result["report"]["missing"] == "part(s) seqNo 1: not received in 1 s"
    assert "missing: part(s) seqNo 1: not received in 1 s" in _render_probe(result)


async def test_a_station_that_refuses_the_report_is_told(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(chargers=[{"id": "CS201"}])
    station = SimCharger201(
        "CS201",
        gateway_url(gateway),
        handlers={"GetBaseReport": lambda _p: {"status": "NotSupported"}},
    )
    async with station, await ControlClient.connect(gateway.config.control.socket) as client:
        await station.boot()
        with pytest.raises(RemoteError, match="CS201 answered GetBaseReport with NotSupported"):
            await client.call("chargers.probe", charger="CS201")


class _CsmsWithoutReports(ChargePoint):  # type: ignore[misc]  # ocpp ships no type information
    """A 2.0.1 CSMS with no NotifyReport handler: the library answers it with a CALLERROR."""

    @on("BootNotification")
    def on_boot(self, **_: Any) -> Any:
        return call_result.BootNotification(
            current_time="2026-12-07T10:00:00Z", interval=300, status="Accepted"
        )


async def test_the_report_is_read_when_the_cloud_answers_it_with_an_error(
    make_gateway: GatewayFactory,
) -> None:
    """The station's report reached the gateway whatever the cloud said of it."""

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        peer = _CsmsWithoutReports(ws.request.path.rsplit("/", 1)[-1], ws)
        with contextlib.suppress(ConnectionClosed):
            await peer.start()

    async with serve(handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp2.0.1")]) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/csms"
        gateway = await make_gateway(cloud_url=url, chargers=[{"id": "CS201"}])
        station = SimCharger201(
            "CS201", gateway_url(gateway), report_data=_model_entries(), report_part_size=5
        )
        async with station, await ControlClient.connect(gateway.config.control.socket) as client:
            await station.boot()
            result = await client.call("chargers.probe", charger="CS201", report_timeout=10)
    assert result["report"] == {"parts": 5, "complete": True, "skipped": 0, "missing": None}
