"""How the other parts of the daemon see and shape the OCPP traffic of every charger.

The proxy knows nothing about cards or load capping. Parts that need the chargers' traffic
(the load-capping controller, the card list pusher, telemetry) register as observers; parts that
must shape what the cloud sends to a charger (the controller keeps the site cap above the
cloud's own charging profiles) register as cloud-call filters. The site's card authority has the
last word on the cards the site refuses (:class:`SiteAuthority`). Every callback is synchronous
and must return quickly: it runs inside the relay path. Anything slow is handed to the part's
own task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

JsonDict = dict[str, Any]


class ChargerObserver(Protocol):
    """Sees chargers come and go and every charger call once it was answered."""

    def charger_connected(self, charger_id: str) -> None: ...

    def charger_disconnected(self, charger_id: str) -> None: ...

    def charger_exchanged(
        self, charger_id: str, action: str, request: JsonDict, response: JsonDict
    ) -> None:
        """A charger call (``action``, ``request``) got ``response``, as the charger saw it.

        Called whether the cloud or the gateway answered; transaction ids are the charger's.
        Calls answered with a CALLERROR are not reported.
        """


class CloudCallFilter(Protocol):
    """May rewrite a cloud call before it reaches the charger, and hears how it ended."""

    def filter_cloud_call(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        """Return the payload to relay (``payload`` itself when nothing changes)."""

    def cloud_call_answered(
        self, charger_id: str, action: str, payload: JsonDict, response: JsonDict | None
    ) -> None:
        """The charger answered a relayed cloud call (``None``: CALLERROR or no answer).
        ``payload`` is the call as the cloud sent it (the charger's transaction ids), before
        any filter rewrote it."""


SITE_CHECKED_ANSWERS: Final = frozenset({"Authorize", "StartTransaction"})
"""Charger calls whose cloud answer the site may overrule (their ``idTagInfo``)."""
SITE_CHECKED_CALLS: Final = frozenset({"RemoteStartTransaction"})
"""Cloud calls the site may answer itself instead of relaying them."""


@dataclass(frozen=True, slots=True)
class SiteOverride:
    """The site's word in place of the cloud's: the payload to use, and why (for the events)."""

    payload: JsonDict
    reason: str
    data: JsonDict


class SiteAuthority(Protocol):
    """The site's own records win over the cloud's Accepted (``auth.site_overrides_cloud``).

    Asked only for :data:`SITE_CHECKED_ANSWERS` and :data:`SITE_CHECKED_CALLS`; decides from
    memory (no I/O). A refusal from the cloud is never turned into an acceptance.
    """

    def override_answer(
        self, charger_id: str, action: str, request: JsonDict, response: JsonDict
    ) -> SiteOverride | None:
        """The answer payload the charger gets instead of the cloud's ``response`` (None: as is)."""

    def refuse_cloud_call(
        self, charger_id: str, action: str, payload: JsonDict
    ) -> SiteOverride | None:
        """The site's own answer to a cloud call it refuses (not relayed); None: relay it."""
