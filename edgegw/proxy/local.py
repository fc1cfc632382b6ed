"""What the gateway answers itself when the cloud cannot: the "who answers what" table.

With a cloud configured, the gateway answers a charger call itself only while the cloud is
unreachable or too slow. Without one (a standalone site) it is the charger's CSMS for everything.

| action                                   | standalone            | cloud unreachable          |
|------------------------------------------|-----------------------|----------------------------|
| BootNotification                         | Accepted              | Accepted (replayed later)  |
| Heartbeat                                | gateway clock         | gateway clock              |
| StatusNotification, *StatusNotification, | acknowledged          | acknowledged (latest status|
| SecurityEventNotification                |                       | and errors replayed later) |
| Authorize                                | site card policy      | site card policy           |
| StartTransaction, StopTransaction,       | recorded, gateway id  | CALLERROR: the charger     |
| MeterValues                              |                       | keeps it and retries       |
| DataTransfer                             | UnknownVendorId       | UnknownVendorId            |
| SignCertificate                          | Rejected              | Rejected                   |

Transaction messages while the cloud is unreachable are refused with a CALLERROR so the charger
keeps them in its own queue (OCPP 1.6 §3.7: a failed transaction message is retried); the
durable outbox that answers them locally is the offline-sync work (see the design notes).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from edgegw.proxy import frames
from edgegw.proxy.frames import Call, CallError, CallResult
from edgegw.store.store import Store

log = logging.getLogger(__name__)

_ACKNOWLEDGED = frozenset(
    {
        "StatusNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "SignedFirmwareStatusNotification",
        "SecurityEventNotification",
    }
)
_TRANSACTION_MESSAGES = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})


def iso_now(clock: Callable[[], float]) -> str:
    return (
        datetime.fromtimestamp(clock(), UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class LocalResponder:
    """Answers charger calls on the gateway's own authority."""

    def __init__(
        self,
        store: Store,
        *,
        standalone: bool,
        heartbeat_interval: int,
        unknown_cards: Literal["reject", "accept"],
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._standalone = standalone
        self._heartbeat_interval = heartbeat_interval
        self._unknown_cards = unknown_cards
        self._clock = clock
        self._handlers: dict[str, Callable[[str, Call], Awaitable[dict[str, Any]]]] = {
            "BootNotification": self._boot,
            "Heartbeat": self._heartbeat,
            "Authorize": self._authorize,
            "StartTransaction": self._start,
            "StopTransaction": self._stop,
            "MeterValues": self._empty,
            "DataTransfer": self._data_transfer,
            "SignCertificate": self._rejected,
        }

    async def answer(self, charger_id: str, call: Call) -> CallResult | CallError:
        if call.action in _TRANSACTION_MESSAGES and not self._standalone:
            return frames.make_error(
                call.id,
                "GenericError",
                "upstream CSMS unreachable; keep this message queued and retry",
            )
        handler = self._handlers.get(call.action)
        if handler is None:
            handler = self._empty if call.action in _ACKNOWLEDGED else None
        if handler is None:
            return frames.make_error(call.id, "NotSupported", f"{call.action} is not handled")
        try:
            payload = await handler(charger_id, call)
        except Exception:
            log.exception("%s: answering %s locally failed", charger_id, call.action)
            return frames.make_error(call.id, "InternalError", "gateway failed to process")
        return frames.make_result(call.id, payload)

    def _id_tag_info(self, id_tag: str) -> dict[str, Any]:
        # The card layers (local list, cache) come with offline authorisation; until then the
        # site policy for cards nobody vouches for decides.
        status = "Accepted" if self._unknown_cards == "accept" else "Invalid"
        return {"status": status}

    async def _boot(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {
            "status": "Accepted",
            "currentTime": iso_now(self._clock),
            "interval": self._heartbeat_interval,
        }

    async def _heartbeat(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {"currentTime": iso_now(self._clock)}

    async def _authorize(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {"idTagInfo": self._id_tag_info(str(call.payload["idTag"]))}

    async def _start(self, charger_id: str, call: Call) -> dict[str, Any]:
        transaction_id = await self._store.next_counter(f"transaction:{charger_id}")
        await self._store.transaction_started(
            charger_id, call.payload, transaction_id, origin="gateway"
        )
        return {
            "transactionId": transaction_id,
            "idTagInfo": self._id_tag_info(str(call.payload["idTag"])),
        }

    async def _stop(self, charger_id: str, call: Call) -> dict[str, Any]:
        if not await self._store.transaction_stopped(charger_id, call.payload):
            # Acknowledge anyway: a charger re-sends an unacknowledged stop forever.
            log.warning(
                "%s: StopTransaction for unknown transaction %s acknowledged",
                charger_id,
                call.payload.get("transactionId"),
            )
        return {}

    async def _empty(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {}

    async def _data_transfer(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}

    async def _rejected(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {"status": "Rejected"}
