"""The site model follows the one session-lifecycle rule (:mod:`edgegw.ocpp.lifecycle`), fed
what the event hub hands it (``interpret`` of each answered call)."""

from __future__ import annotations

from typing import Any

import pytest

from edgegw.energy.controlstate import snapshot
from edgegw.ocpp.events import ChargerConnected, ConnectorStatus, SessionStarted, SessionStopped
from edgegw.ocpp.interpret import interpret
from tests.energy.test_planner import Site

ALFEN_TX = 9223372036854775807
"""Alfen's int64-maximum transaction id (hardware/chargers/alfen-eve.toml)."""


def feed(site: Site, charger_id: str, action: str, request: Any, response: Any = None) -> None:
    site.send(*interpret(charger_id, action, request, response or {}, 0))


def status(site: Site, charger_id: str, connector: int, name: str) -> None:
    site.send(ConnectorStatus(charger_id=charger_id, at=0, connector=connector, status=name))


def alfen_backlog(site: Site, charger_id: str = "ALFEN") -> None:
    values = [
        {"value": "32.000", "context": "CurrentMax", "measurand": "Current.Import", "phase": p}
        for p in ("L1", "L2", "L3")
    ]
    request = {
        "connectorId": 1,
        "transactionId": ALFEN_TX,
        "meterValue": [{"timestamp": "2020-01-01T00:00:00Z", "sampledValue": values}],
    }
    feed(site, charger_id, "MeterValues", request)


def alfen_site() -> Site:
    site = Site(chargers=[{"id": "ALFEN", "model": "alfen-eve"}, {"id": "B"}])
    for cid in ("ALFEN", "B"):
        site.send(ChargerConnected(charger_id=cid, at=0))
    return site


@pytest.mark.parametrize("idle", ["Available", "Unavailable", "Faulted", "Finishing", "Reserved"])
def test_alfens_replayed_backlog_opens_no_session_on_an_idle_connector(idle: str) -> None:
    site = alfen_site()
    status(site, "ALFEN", 1, idle)
    alfen_backlog(site)
    assert site.model.chargers["ALFEN"].sessions == {}
    # B alone shares the site: nothing is kept back for a phantom
    site.plug("B", 2)
    for _ in range(5):
        site.ack_all()
        site.round()
    site.ack_all()
    assert site.limits() == {"B/1": 16.0}


def test_a_measurement_still_learns_a_session_whose_start_was_missed() -> None:
    site = alfen_site()
    for last in (None, "Charging"):
        connector = 1 if last is None else 2
        if last is not None:
            status(site, "ALFEN", connector, last)
            del site.model.chargers["ALFEN"].sessions[connector]  # as if the start was missed
        feed(site, "ALFEN", "MeterValues", {"connectorId": connector, "transactionId": 5})
        session = site.model.chargers["ALFEN"].sessions[connector]
        assert session.transaction_id == "5" and session.tx_number == 5


@pytest.mark.parametrize("idle", ["Available", "Unavailable", "Faulted", "Finishing", "Reserved"])
def test_an_idle_status_ends_the_session(idle: str) -> None:
    site = alfen_site()
    site.plug("ALFEN", 1234)
    feed(site, "ALFEN", "StopTransaction", {"transactionId": ALFEN_TX, "meterStop": 6000})
    assert 1 in site.model.chargers["ALFEN"].sessions  # the stop matched no session
    status(site, "ALFEN", 1, idle)
    assert site.model.chargers["ALFEN"].sessions == {}


def test_preparing_neither_opens_nor_ends() -> None:
    site = alfen_site()
    status(site, "ALFEN", 1, "Preparing")
    assert site.model.chargers["ALFEN"].sessions == {}
    site.plug("ALFEN", 7)
    status(site, "ALFEN", 1, "Preparing")
    assert 1 in site.model.chargers["ALFEN"].sessions


def test_string_transaction_ids_end_only_their_own_session() -> None:
    """What an OCPP 2.0.1 interpreter sends: the charger's own string ids."""
    site = Site(chargers=[{"id": "CP"}])
    site.send(ChargerConnected(charger_id="CP", at=0))
    for connector, tx in ((1, "c0ffee-1"), (2, "c0ffee-2")):
        status(site, "CP", connector, "Charging")
        site.send(
            SessionStarted(
                charger_id="CP", at=0, connector=connector, transaction_id=tx, id_tag="T"
            )
        )
    site.send(SessionStopped(charger_id="CP", at=0, transaction_id="c0ffee-1"))
    sessions = site.model.chargers["CP"].sessions
    assert list(sessions) == [2]
    assert sessions[2].transaction_id == "c0ffee-2" and sessions[2].tx_number is None


def cloud_tx_profile(transaction_id: int, limit: float) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 5,
            "transactionId": transaction_id,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        },
    }


def test_a_16_transaction_id_reaches_profiles_and_the_state_view_as_an_integer() -> None:
    """The model keeps the event's string; what is built for OCPP 1.6 gets the integer (a
    TxDefaultProfile charger caps a session with a cloud TxProfile by a TxProfile of its own)."""
    site = Site(chargers=[{"id": "CP", "model": "evbox-elvi"}])
    site.send(ChargerConnected(charger_id="CP", at=0))
    site.plug("CP", 7)
    ch = site.model.chargers["CP"]
    assert ch.sessions[1].transaction_id == "7" and ch.sessions[1].tx_number == 7
    site.model.cloud_call_accepted(ch, "SetChargingProfile", cloud_tx_profile(7, 8))
    site.round()
    assert site.limits() == {"CP/1": 8.0}  # the cloud's TxProfile for transaction 7 applies
    # Only a TxProfile outranks the cloud's: the gateway's carries the integer id.
    tx_ids = [
        cmd.payload["csChargingProfiles"].get("transactionId")
        for cmd in ch.pending()
        if cmd.payload["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile"
    ]
    assert tx_ids == [7]
    state = snapshot(site.model, site.model.limits())
    assert [s.transaction_id for c in state.chargers for s in c.sessions] == [7]


def test_a_cloud_tx_profile_for_another_transaction_does_not_apply() -> None:
    site = Site(chargers=[{"id": "CP"}])
    site.send(ChargerConnected(charger_id="CP", at=0))
    site.plug("CP", 7)
    ch = site.model.chargers["CP"]
    site.model.cloud_call_accepted(ch, "SetChargingProfile", cloud_tx_profile(8, 8))
    site.round()
    assert site.limits() == {"CP/1": 16.0}
