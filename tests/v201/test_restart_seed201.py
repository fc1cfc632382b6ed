"""After a restart the daemon puts back the 2.x transactions its store recorded as running, so
their later TransactionEvents (which name no EVSE) are read on the EVSE they started on: here
EVSE 2, where the placing rule for a transaction never heard of would guess EVSE 1."""

from __future__ import annotations

from pathlib import Path

from edgegw.daemon import Gateway
from edgegw.ocpp.events import Event, Measured
from edgegw.sim.charger201 import SimCharger201
from edgegw.store import sessions201
from edgegw.store.store import Store
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_txevse_restart201 import updated


class Heard:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)


async def test_a_transaction_recorded_as_running_is_read_on_its_evse_after_a_restart(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    path = tmp_path / "site.db"
    store = await Store.open(path)
    start = sessions201.Start201(
        tx_ref="tx-77",
        evse=2,
        id_tag="04A1B2C3",
        meter_start_wh=1000,
        timestamp="2026-03-10T09:00:00Z",
        queued=False,
    )
    assert await sessions201.write_start(store, "CS1", start, 1_700_000_000.0)
    assert await sessions201.running_201(store) == [("CS1", "tx-77", 2)]
    await store.close()

    gateway = await make_gateway(chargers=[{"id": "CS1"}], store={"path": str(path)})
    assert gateway.hub is not None
    heard = Heard()
    async with SimCharger201("CS1", gateway_url(gateway)) as cs:  # speaks 2.0.1 (no cloud)
        await cs.boot()
        await check_hub(gateway, heard)


async def check_hub(gateway: Gateway, heard: Heard) -> None:
    assert gateway.hub is not None
    gateway.hub.extended(heard).charger_exchanged(
        "CS1", "TransactionEvent", updated("tx-77", 12.0), {}
    )
    assert [e.connector for e in heard.events if isinstance(e, Measured)] == [2]
