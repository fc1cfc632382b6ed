"""What the capacity benchmark's chargers and cloud say, in OCPP 1.6 and in OCPP 2.0.1.

Written from the specifications for the load generator alone (no edgegw code), so the
benchmark measures the gateway against an independent peer. Each charger has two connectors
(1.6) or two EVSEs of one connector each (2.0.1) and runs a session on each:

* 1.6: BootNotification, a StatusNotification per connector (0, 1, 2), a StartTransaction per
  connector; then a MeterValues per connector every interval and a Heartbeat;
* 2.0.1: BootNotification, a StatusNotification per EVSE (Occupied), a TransactionEvent
  ``Started`` per EVSE; then a TransactionEvent ``Updated`` (MeterValuePeriodic, the same five
  sampled values) per EVSE every interval and a Heartbeat.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

OCPP16 = "ocpp1.6"
OCPP201 = "ocpp2.0.1"
VERSIONS = (OCPP16, OCPP201)
TIME = "2026-01-01T00:00:00Z"
CONNECTORS = (1, 2)

Payload = dict[str, Any]


def _samples(n: int) -> list[Payload]:
    return [
        {"value": str(1000 + n * 30), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "11040", "measurand": "Power.Active.Import", "unit": "W"},
        *(
            {"value": "16.0", "measurand": "Current.Import", "phase": p, "unit": "A"}
            for p in ("L1", "L2", "L3")
        ),
    ]


def _samples201(n: int) -> list[Payload]:
    return [
        {
            "value": 1000 + n * 30,
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "Wh"},
        },
        {"value": 11040, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
        *(
            {
                "value": 16.0,
                "measurand": "Current.Import",
                "phase": p,
                "unitOfMeasure": {"unit": "A"},
            }
            for p in ("L1", "L2", "L3")
        ),
    ]


class Charger16:
    """OCPP 1.6 frames of one charger."""

    subprotocol = OCPP16
    boot: Payload = {"chargePointVendor": "Bench", "chargePointModel": "Capacity"}

    def __init__(self, charger_id: str) -> None:
        self.id_tag = f"{abs(hash(charger_id)) % 0xFFFFFFFF:08X}"
        self.transactions: dict[int, Any] = {}

    def statuses(self) -> Iterator[Payload]:
        for connector in (0, *CONNECTORS):
            status = "Available" if connector == 0 else "Preparing"
            yield {"connectorId": connector, "errorCode": "NoError", "status": status}

    def start(self, connector: int) -> tuple[str, Payload]:
        return "StartTransaction", {
            "connectorId": connector,
            "idTag": self.id_tag,
            "meterStart": 0,
            "timestamp": TIME,
        }

    def started(self, connector: int, answer: Payload) -> None:
        self.transactions[connector] = int(answer.get("transactionId", 0))

    def periodic(self, connector: int, n: int) -> tuple[str, Payload]:
        return "MeterValues", {
            "connectorId": connector,
            "transactionId": self.transactions[connector],
            "meterValue": [{"timestamp": TIME, "sampledValue": _samples(n)}],
        }


class Charger201:
    """OCPP 2.0.1 frames of one charging station (``seqNo`` counts its TransactionEvents)."""

    subprotocol = OCPP201
    boot: Payload = {
        "reason": "PowerUp",
        "chargingStation": {"model": "Capacity", "vendorName": "Bench"},
    }

    def __init__(self, charger_id: str) -> None:
        self.id_token = {"idToken": f"{abs(hash(charger_id)) % 0xFFFFFFFF:08X}", "type": "ISO14443"}
        self.transactions = {c: f"{charger_id}-{c}" for c in CONNECTORS}
        self._seq = itertools.count(0)

    def statuses(self) -> Iterator[Payload]:
        for evse in CONNECTORS:
            yield {
                "timestamp": TIME,
                "connectorStatus": "Occupied",
                "evseId": evse,
                "connectorId": 1,
            }

    def _event(self, kind: str, trigger: str, number: int, **more: Any) -> tuple[str, Payload]:
        return "TransactionEvent", {
            "eventType": kind,
            "timestamp": TIME,
            "triggerReason": trigger,
            "seqNo": next(self._seq),
            "transactionInfo": {"transactionId": self.transactions[number]},
            **more,
        }

    def start(self, evse: int) -> tuple[str, Payload]:
        return self._event(
            "Started",
            "Authorized",
            evse,
            idToken=self.id_token,
            evse={"id": evse, "connectorId": 1},
        )

    def started(self, evse: int, answer: Payload) -> None:
        pass

    def periodic(self, evse: int, n: int) -> tuple[str, Payload]:
        return self._event(
            "Updated",
            "MeterValuePeriodic",
            evse,
            meterValue=[{"timestamp": TIME, "sampledValue": _samples201(n)}],
        )


Dialect = Charger16 | Charger201


def dialect(version: str, charger_id: str) -> Dialect:
    return Charger201(charger_id) if version == OCPP201 else Charger16(charger_id)


def cloud_answer(version: str, action: str, payload: Payload, transaction_id: int) -> Payload:
    """What the benchmark's cloud answers a charger's call (``transaction_id``: the next free
    1.6 transaction id)."""
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": TIME, "interval": 300}
    if action == "Heartbeat":
        return {"currentTime": TIME}
    if version == OCPP201:
        if action == "Authorize" or (action == "TransactionEvent" and "idToken" in payload):
            return {"idTokenInfo": {"status": "Accepted"}}
        return {}
    if action == "StartTransaction":
        return {"transactionId": transaction_id, "idTagInfo": {"status": "Accepted"}}
    if action in ("Authorize", "StopTransaction"):
        return {"idTagInfo": {"status": "Accepted"}}
    return {}


CHARGER_ANSWERS: dict[str, Payload] = {
    "GetConfiguration": {"configurationKey": [], "unknownKey": []},
    "GetLocalListVersion": {"listVersion": 0},
    "DataTransfer": {"status": "UnknownVendorId"},
}
"""What a charger answers the gateway's calls (anything else: ``{"status": "Accepted"}``)."""
