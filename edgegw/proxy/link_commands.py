"""What the relay core (:mod:`edgegw.proxy.link`) is told and what it answers: the commands it
returns to the I/O shell, who sent a call, which calls are transaction messages, its limits.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from edgegw.proxy.frames import Call, CallError, CallResult
from edgegw.proxy.hooks import SiteOverride
from edgegw.store.outbox import QueuedMessage

_MAX_REPLAYED_ERRORS = 100  # error StatusNotifications kept per charger while the cloud is away


MAX_QUEUED_TO_CHARGER = 32
"""Calls waiting for one charger (it answers one at a time); the cloud's overflow is refused."""


STALL_FACTOR = 4
"""A call the cloud has not answered after this many ``call_timeout``s closes the connection."""


OUTBOX_WINDOW = 50
"""Queued messages a link keeps in memory; the rest wait on disk (an outage can last days).

Per charger: after a long outage every link holds its window at once, so 2,000 chargers hold
100,000 messages at 50, a gigabyte at 500. Replay sends one call at a time; reading the next
window every 50 messages costs one indexed query.
"""


class Origin(Enum):
    CHARGER = "charger"  # a charger call relayed to the cloud
    CLOUD = "cloud"  # a cloud call relayed to the charger
    GATEWAY = "gateway"  # the gateway's own call to the charger
    REPLAY = "replay"  # the gateway re-sending a charger message to the cloud
    OUTBOX = "outbox"  # a queued transaction message sent from the durable outbox


TRANSACTION_MESSAGES = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})


TRANSACTION_EVENT = "TransactionEvent"
"""The one OCPP 2.x transaction message: queued durably, replayed with ``offline`` set (see
:mod:`edgegw.proxy.local201`)."""


GATEWAY_ANSWERS_CLOUD = frozenset({"SendLocalList", "GetLocalListVersion"})
"""Cloud calls the gateway answers itself: it owns each charger's local list (see auth)."""


def message_ids() -> Callable[[], str]:
    """Message ids for the gateway's own calls on one connection (a link's ``new_id``): unique,
    and cheap to make.

    A random prefix per connection (ids never repeat across reconnects), then a counter; a
    uuid4 per message cost an ``os.urandom`` call on every replayed message.
    """
    prefix = secrets.token_hex(6)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):x}"


def _usable_transaction_message(call: Call) -> bool:
    """A transaction message with the fields the gateway itself needs to queue and record it
    (whatever else the schema finds wrong with it)."""
    p = call.payload
    if call.action == "StartTransaction":
        return (
            isinstance(p.get("connectorId"), int)
            and isinstance(p.get("idTag"), str)
            and isinstance(p.get("meterStart"), int)
            and isinstance(p.get("timestamp"), str)
        )
    if call.action == "StopTransaction":
        return (
            isinstance(p.get("transactionId"), int)
            and isinstance(p.get("meterStop"), int)
            and isinstance(p.get("timestamp"), str)
        )
    if call.action == "MeterValues":
        return isinstance(p.get("connectorId"), int) and isinstance(p.get("meterValue"), list)
    return False


def is_transaction_message(call: Call) -> bool:
    """StartTransaction, StopTransaction and MeterValues *of a transaction* (OCPP 1.6 §3.7)."""
    if call.action == "MeterValues":
        return isinstance(call.payload.get("transactionId"), int)
    return call.action in TRANSACTION_MESSAGES


@dataclass(frozen=True, slots=True)
class SyncParams:
    max_attempts: int = 5
    retry_interval: float = 5.0
    max_retry_interval: float = 300.0


@dataclass(frozen=True, slots=True)
class ToCharger:
    frame: str


@dataclass(frozen=True, slots=True)
class ToCloud:
    """Send ``frame`` on the cloud connection of ``epoch``; if it has gone since, drop it."""

    frame: str
    epoch: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class AnswerLocally:
    """The gateway must answer this charger call itself; feed the answer to ``local_answer``.

    With ``queue`` the call is a transaction message for the outbox: commit it first, then
    answer, and hand the queued message to ``local_answer``.
    """

    call: Call
    queue: bool = False


@dataclass(frozen=True, slots=True)
class AnswerIfResent:
    """Is this transaction message a copy of one in the outbox? Feed ``resent_checked``.

    If it is, the shell answers it as before (the outbox recognises the copy) and hands the
    answer to ``resent_checked``; if not, it hands ``None`` and the link relays the call.
    """

    call: Call


@dataclass(frozen=True, slots=True)
class LoadOutbox:
    """Load the charger's queued messages after seq ``after``; feed them to ``outbox_loaded``."""

    after: int


@dataclass(frozen=True, slots=True)
class Delivered:
    """The cloud accepted a queued message: remove it from the outbox (durably)."""

    message: QueuedMessage
    answer: CallResult
    cloud_transaction_id: int | None


@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    """A queued message was refused or not answered; ``parked``: it will not be tried again."""

    message: QueuedMessage
    error: str
    parked: bool


@dataclass(frozen=True, slots=True)
class CloudVerdict:
    """The cloud's late answer to an Authorize the gateway had answered: learn the card."""

    call: Call
    answer: CallResult


@dataclass(frozen=True, slots=True)
class CloseCloud:
    """The cloud has not answered a call for far too long: close the connection and reconnect.

    Only a closed connection ends a call the cloud has not answered; the re-send after it is the
    one at-least-once window at the cloud boundary.
    """

    reason: str
    epoch: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class CloudCallForGateway:
    """A cloud call the gateway answers itself (the local list); send the answer to the cloud."""

    call: Call


@dataclass(frozen=True, slots=True)
class CloudExchanged:
    """A cloud call relayed to the charger ended (``answer`` None: no answer).

    ``call`` is the call as the cloud asked it (with the charger's transaction ids), before
    the cloud-call filters rewrote it: a profile clamped under the site cap is the cloud's own
    limit here, not the clamped copy the charger got."""

    call: Call
    answer: CallResult | CallError | None


@dataclass(frozen=True, slots=True)
class GatewayDone:
    """One of the gateway's own calls ended; ``answer`` is None on timeout or disconnect."""

    message_id: str
    answer: CallResult | CallError | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SiteOverridden:
    """The site's records overruled the cloud (an answer rewritten, a cloud call refused)."""

    action: str
    override: SiteOverride


@dataclass(frozen=True, slots=True)
class Exchanged:
    """A charger call was answered (by the cloud or locally): for the recorder."""

    call: Call
    answer: CallResult | CallError
    answered_by: str  # "cloud" | "gateway"


Command = (
    ToCharger
    | ToCloud
    | AnswerLocally
    | AnswerIfResent
    | GatewayDone
    | Exchanged
    | LoadOutbox
    | Delivered
    | DeliveryFailed
    | CloudCallForGateway
    | CloudExchanged
    | CloseCloud
    | CloudVerdict
    | SiteOverridden
)
