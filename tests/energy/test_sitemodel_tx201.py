"""A charger whose model takes only TxProfiles (no station-wide or default profile to hold the
cap) running an OCPP 2.0.1 transaction: its id is a string the 1.6 TxProfile cannot carry, yet
the site model must still cap the car with a TxProfile (rendered in 2.0.1 form with that id),
not leave it without a cap."""

from __future__ import annotations

from dataclasses import dataclass

from ocpp.messages import get_validator

from edgegw.config import parse_config
from edgegw.energy.chargermodels import Purpose
from edgegw.energy.profiles import ProfileKey
from edgegw.energy.profiles201 import set_charging_profile
from edgegw.energy.sitemodel import SiteModel
from edgegw.energy.siterecords import Tuning
from edgegw.ocpp.events import ChargerConnected, ConnectorStatus, SessionStarted
from tests.energy.test_planner import ALL_MODELS, GENERIC, WALL, Site
from tests.energy.test_profiles import variant

TX_ONLY = variant(GENERIC, purposes=[Purpose.TX]).model_copy(update={"id": "tx-only"})
TX_ID = "4f0c2a8e-6d1b-4c3e-9a57-0b8e1f2d3c4a"
"""A 2.0.1 station's transactionId: a string, not 1.6's integer."""


@dataclass
class TxOnlySite(Site):
    """:class:`Site` whose chargers may be of the TxProfile-only model ``tx-only``."""

    def __post_init__(self) -> None:
        config = parse_config(
            {
                "site": {"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100, **self.site},
                "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
                "meters": [{"profile": "eastron-sdm630"}],
                "chargers": self.chargers,
            }
        )
        models = {**ALL_MODELS, "tx-only": TX_ONLY}
        self.model = SiteModel(
            config, models, clock=lambda: self.now, wall_clock=lambda: WALL, tuning=Tuning()
        )


def test_a_2_0_1_transaction_on_a_tx_profile_only_charger_gets_its_tx_profile() -> None:
    site = TxOnlySite(
        chargers=[{"id": "CS201", "model": "tx-only", "max_current_a": 32}],
        building=(20.0, 20.0, 20.0),
    )
    assert site.model.charger("CS201").model.cap_purpose is Purpose.TX
    site.send(
        ChargerConnected(charger_id="CS201", at=0),
        ConnectorStatus(charger_id="CS201", at=0, connector=1, status="Occupied"),
        SessionStarted(charger_id="CS201", at=0, connector=1, transaction_id=TX_ID, id_tag="T"),
    )
    for _ in range(3):
        site.round()
        site.ack_all()
    ch = site.model.chargers["CS201"]
    session = ch.sessions[1]
    assert session.transaction_id == TX_ID and session.tx_number is None
    assert session.limit_a is not None and session.limit_a < 32.0  # the building leaves less

    key = ProfileKey(1, Purpose.TX)
    assert set(ch.desired) == {key}, "the car is capped by its TxProfile"
    cmd = ch.desired[key]
    assert cmd.limit_a == session.limit_a
    assert ch.acked[key] == cmd
    payload = set_charging_profile(cmd, transaction_id=session.transaction_id, now=WALL)
    get_validator(2, "SetChargingProfile", "2.0.1").validate(payload)
    profile = payload["chargingProfile"]
    assert profile["chargingProfilePurpose"] == "TxProfile"
    assert profile["transactionId"] == TX_ID
    assert payload["evseId"] == 1
    assert profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == cmd.limit_a
    # What the charger has in force is the car's cap, not its maximum.
    assert ch.offered(1) == session.limit_a
