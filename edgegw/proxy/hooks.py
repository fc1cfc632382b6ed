"""How the other parts of the daemon see and shape the OCPP traffic of every charger.

The proxy knows nothing about cards or load capping. Parts that need the chargers' traffic
(the load-capping controller, the card list pusher, telemetry) register as observers; parts that
must shape what the cloud sends to a charger (the controller keeps the site cap above the
cloud's own charging profiles) register as cloud-call filters. Every callback is synchronous and
must return quickly: it runs inside the relay path. Anything slow is handed to the part's own task.
"""

from __future__ import annotations

from typing import Any, Protocol

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
        """The charger answered a relayed cloud call (``None``: CALLERROR or no answer)."""
