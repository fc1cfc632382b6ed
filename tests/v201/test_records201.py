"""What the gateway records of a 2.0.1 charger's Boot and StatusNotification: the 2.0.1 fields,
read as such (not as missing 1.6 fields). Real sockets on port 0."""

from __future__ import annotations

from edgegw.proxy.rules import RecordBoot, RecordStatus, records_of
from edgegw.sim.charger201 import SimCharger201
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_relay201 import CHARGERS, Cloud201, cloud201  # noqa: F401


def test_201_boot_and_status_are_recorded_in_the_stores_terms() -> None:
    boot = {
        "reason": "PowerUp",
        "chargingStation": {
            "vendorName": "V",
            "model": "M",
            "serialNumber": "S1",
            "firmwareVersion": "1.2",
        },
    }
    assert records_of("BootNotification", boot, {"status": "Accepted"}, "cloud", v2=True) == [
        RecordBoot(
            {
                "chargePointVendor": "V",
                "chargePointModel": "M",
                "chargePointSerialNumber": "S1",
                "firmwareVersion": "1.2",
            }
        )
    ]
    status = {
        "timestamp": "2026-12-07T10:00:00Z",
        "connectorStatus": "Occupied",
        "evseId": 2,
        "connectorId": 1,
    }
    assert records_of("StatusNotification", status, {}, "gateway", v2=True) == [
        RecordStatus(
            {
                "connectorId": 2,
                "status": "Occupied",
                "errorCode": "NoError",
                "timestamp": "2026-12-07T10:00:00Z",
            }
        )
    ]
    # Without the fields the records need: nothing recorded (never a wiped vendor or "").
    assert records_of("BootNotification", {"reason": "PowerUp"}, {}, "cloud", v2=True) == []
    assert records_of("StatusNotification", {"evseId": 1}, {}, "cloud", v2=True) == []


async def test_a_201_charger_keeps_its_vendor_and_its_status(
    cloud201: Cloud201,  # noqa: F811
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(cloud_url=cloud201.url, chargers=CHARGERS)
    store = gateway.store
    assert store is not None
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        await cs.status(2, "Occupied")
        await cs.heartbeat()  # a round trip: the exchanges before it are handed to the store
        (row,) = [r for r in await store.chargers() if r.id == "CS201"]
        assert (row.vendor, row.model, row.serial) == ("edgegw", "Sim201", "CS201")
        assert await store.connector_status("CS201") == {2: ("Occupied", "NoError")}
