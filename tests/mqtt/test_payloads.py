"""The state payloads Home Assistant reads, from a live state fed charger events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgegw.config import Config, parse_config
from edgegw.live.state import LiveState
from edgegw.ocpp.events import ChargerConnected
from edgegw.ocpp.interpret import interpret
from edgegw.telemetry.payloads import charger_payload, site_payload

NOW = 1_767_261_600.0


@dataclass
class Parts:
    config: Config
    sessions: dict[str, Any] = field(default_factory=dict)
    store: Any = None
    meters: Any = None
    controller: Any = None
    authorizer: Any = None


def test_the_published_load_is_the_one_the_controller_acts_on() -> None:
    """A three-phase charger reporting 16 A without a phase draws 16 A on each phase (not on
    L1 only); a single-phase charger wired to the site's L3 adds to the site's L3. A session of
    an OCPP 1.6 charger keeps its integer transaction id."""
    config = parse_config({"chargers": [{"id": "CP1"}, {"id": "CP2", "phases": "L3"}]})
    live = LiveState(Parts(config))

    def call(charger: str, action: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        for event in interpret(charger, action, request, response, NOW):
            live.handle(event)

    for charger, amps in (("CP1", "16"), ("CP2", "10")):
        live.handle(ChargerConnected(charger_id=charger, at=NOW))
        call(
            charger,
            "StartTransaction",
            {"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 0},
            {"transactionId": 42, "idTagInfo": {"status": "Accepted"}},
        )
        call(
            charger,
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 42,
                "meterValue": [
                    {
                        "timestamp": "2026-01-01T10:00:00Z",
                        "sampledValue": [{"value": amps, "measurand": "Current.Import"}],
                    }
                ],
            },
            {},
        )
    cp1 = live.charger("CP1")
    assert cp1 is not None
    payload = charger_payload(cp1, cards=False)
    currents = [payload[f"current_l{i}_a"] for i in (1, 2, 3)]
    assert currents == [16.0, 16.0, 16.0]
    session = payload["connectors"][0]["session"]
    assert session["transaction_id"] == 42 and isinstance(session["transaction_id"], int)
    cp2 = live.charger("CP2")
    assert cp2 is not None
    assert [charger_payload(cp2, cards=False)[f"current_l{i}_a"] for i in (1, 2, 3)] == [
        10.0,
        None,
        None,
    ]
    site = site_payload(live.site())
    assert [site[f"ev_current_l{i}_a"] for i in (1, 2, 3)] == [16.0, 16.0, 26.0]
