"""What the gateway answers a 2.x charger itself: the OCPP 2.1 Local Controller.

OCPP 2.1 Part 4 §6.3 (Edition 2) lets a Local Controller *capable of responding to Charging
Station requests, that forwards transaction-related requests to the CSMS once the connection is
restored* keep its charging stations connected while the CSMS is away. edgegw is that Local
Controller for ``ocpp2.0.1`` and ``ocpp2.1`` chargers, on the same rules as for 1.6 (see
:mod:`edgegw.proxy.local`): while the cloud is unreachable or too slow, and on a site without
a cloud, the gateway answers

| action                                      | answer                                          |
|---------------------------------------------|-------------------------------------------------|
| BootNotification                            | Accepted, gateway clock, heartbeat interval     |
| Heartbeat                                   | gateway clock                                   |
| StatusNotification, NotifyEvent, NotifyReport, SecurityEventNotification, MeterValues, the |
| other notifications whose answer is empty  | ``{}`` (the latest status per EVSE and connector, |
|                                             | NotifyEvents and Faulted statuses replayed)     |
| Authorize                                   | ``idTokenInfo`` from the card layers            |
| TransactionEvent                            | outbox first (durable), then ``{}``, with       |
|                                             | ``idTokenInfo`` when the event has an idToken   |
| DataTransfer / SignCertificate              | UnknownVendorId / Rejected                      |

**Tokens.** An ``IdTokenType`` ``{idToken, type}``: ``ISO14443`` and ``ISO15693`` tokens are
card UIDs and go to the card authority as a 1.6 idTag does (the charger's idTag format, every
format for a charger set to ``auto``: :mod:`edgegw.auth.cardid`), so an enrolled card matches
whichever way the charger writes it. ``Central``, ``eMAID``, ``KeyCode``, ``Local``,
``MacAddress`` tokens are decided on their text *literally* by the same layers (installer cards,
the cloud list mirror, the cache of cloud answers, the site policy): a hex-shaped token matches
the card enrolled as that text, never a card whose UID renders as that text in some idTag
format (``Authorizer.decide(..., literal=True)``, handed in as ``decide_literal`` and
``decide_start_literal``). ``NoAuthorization`` (the station was
set to start without a token) is Accepted. The answer's ``idTokenInfo`` carries the decision's
status (the 1.6 statuses are 2.0.1 ones), its expiry as ``cacheExpiryDateTime`` and its parent
as a ``Central`` ``groupIdToken``.

**The offline flag.** OCPP 2.0.1 has the *station* set ``offline = true`` on a TransactionEvent
for an event that happened while it was offline; a station connected to the gateway is online
and leaves it out. The CSMS reads the flag to know that the event reaches it late (its
timestamp is the event's, not the delivery's; E.g. for billing and idToken checks), which is
what a queued event is. So **the gateway sets ``offline: true`` on every TransactionEvent it
answered itself and queued**, and only on those; ``seqNo``, the transaction id (the charger's
own string, never remapped) and everything else stay as the charger sent them. The event is
stored with the flag set, so a copy the station sends again (with or without the flag) is
recognised in the outbox and answered as before, never queued twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from edgegw.proxy.frames import Call
from edgegw.proxy.idtokens import id_token_info, token_text
from edgegw.store.outbox import QueuedMessage
from edgegw.store.store import Store

log = logging.getLogger(__name__)

ACKNOWLEDGED_201 = frozenset(
    {
        "StatusNotification",
        "NotifyEvent",
        "NotifyReport",
        "SecurityEventNotification",
        "MeterValues",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "PublishFirmwareStatusNotification",
        "NotifyChargingLimit",
        "ClearedChargingLimit",
        "NotifyMonitoringReport",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
    }
)
"""2.x charger calls whose answer is empty: acknowledged."""

UID_TOKENS = frozenset({"ISO14443", "ISO15693"})
"""IdTokenType types that are card UIDs (read in the charger's idTag format)."""

TokenInfo = Callable[[str, str], dict[str, Any]]
"""The card authority's 1.6 decision: (charger id, idTag) → ``idTagInfo``."""


def offline_event(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A TransactionEvent as the gateway queues and replays it: ``offline`` set, the rest as
    the charger sent it."""
    return {**payload, "offline": True}


class LocalResponder201:
    """Answers a 2.x charger's calls on the gateway's own authority; queues TransactionEvents.

    Built by :class:`~edgegw.proxy.local.LocalResponder`, which hands it the calls of 2.x
    links and its card decisions: ``decide`` for an Authorize, ``decide_start`` for the token
    of a TransactionEvent (a session the cloud remote-started is honoured, as for 1.6).
    """

    def __init__(
        self,
        store: Store,
        *,
        heartbeat_interval: int,
        decide: TokenInfo,
        decide_start: TokenInfo,
        now: Callable[[], str],
        decide_literal: TokenInfo | None = None,
        decide_start_literal: TokenInfo | None = None,
    ) -> None:
        """``decide_literal``/``decide_start_literal``: the same decisions for a token that is
        no card UID (read literally); None: ``decide``/``decide_start`` decide those too."""
        self._store = store
        self._heartbeat_interval = heartbeat_interval
        self._decide = decide
        self._decide_start = decide_start
        self._decide_literal = decide_literal or decide
        self._decide_start_literal = decide_start_literal or decide_start
        self._now = now

    def payload(self, charger_id: str, call: Call) -> dict[str, Any] | None:
        """The answer's payload to ``call``; None: not handled here (NotSupported)."""
        action = call.action
        if action == "BootNotification":
            return {
                "status": "Accepted",
                "currentTime": self._now(),
                "interval": self._heartbeat_interval,
            }
        if action == "Heartbeat":
            return {"currentTime": self._now()}
        if action == "Authorize":
            token = call.payload.get("idToken")
            return {
                "idTokenInfo": token_info(charger_id, token, self._decide, self._decide_literal)
            }
        if action == "TransactionEvent":
            return self._event_answer(charger_id, call.payload)
        if action in ACKNOWLEDGED_201:
            return {}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        if action == "SignCertificate":
            return {"status": "Rejected"}
        return None

    async def queue(
        self, charger_id: str, call: Call
    ) -> tuple[dict[str, Any], QueuedMessage | None]:
        """Commit a TransactionEvent to the outbox (``offline`` set), then answer it.

        Raises when the commit fails (the caller answers a CALLERROR: the station keeps the
        event and sends it again). None for the message: the outbox had it (a copy)."""
        message = await self._store.outbox.enqueue(
            charger_id, call.action, offline_event(call.payload)
        )
        return self._event_answer(charger_id, call.payload), message

    async def contains(self, charger_id: str, call: Call) -> bool:
        """This TransactionEvent (with or without its ``offline`` flag) is in the outbox."""
        return await self._store.outbox.contains(
            charger_id, call.action, offline_event(call.payload)
        )

    def _event_answer(self, charger_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A TransactionEvent's answer: ``idTokenInfo`` only when the event has an idToken."""
        if "idToken" not in payload:
            return {}
        info = token_info(
            charger_id, payload["idToken"], self._decide_start, self._decide_start_literal
        )
        return {"idTokenInfo": info}


def token_info(
    charger_id: str, id_token: object, decide: TokenInfo, literal: TokenInfo | None = None
) -> dict[str, Any]:
    """The ``idTokenInfo`` for an IdTokenType presented at ``charger_id``, from ``decide`` for
    a card UID (:data:`UID_TOKENS`), from ``literal`` (default ``decide``) for another token."""
    token = token_text(id_token)
    if token is None:
        return {"status": "Invalid"}
    text, kind = token
    if kind == "NoAuthorization":
        return {"status": "Accepted"}
    if not text:
        return {"status": "Invalid"}
    if kind not in UID_TOKENS and literal is not None:
        decide = literal
    return id_token_info(decide(charger_id, text))
