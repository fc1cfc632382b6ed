"""The gateway's card authority as the proxy sees it: the authorizer plus each charger's setup.

:class:`~edgegw.proxy.local.LocalResponder` asks "may this idTag charge here?" and tells what
the cloud answered; this adapter supplies each charger's idTag format and free-charging tag from
the configuration and logs every local decision once with its reason, so a caretaker can see
why a card was refused.

A caretaker can set a charger to *free charging* at runtime (:meth:`SiteCards.set_free_charging`):
every idTag presented there is then accepted whenever the gateway decides itself (standalone,
cloud unreachable or too slow), without asking the lists, the cache or the offline policy, and
the site does not overrule the cloud there.

While the cloud answers, its answer is what the charger gets, with one exception: *deny wins*
(``auth.site_overrides_cloud``, on by default). When the site's own records (the installer's
cards) refuse a card at a charger (Blocked, Expired, Invalid, past its expiry, not allowed on
that charger) and the cloud answers Accepted, the charger hears the site's refusal in the
``idTagInfo`` of its Authorize or StartTransaction answer, everything else of the answer
unchanged; a StartTransaction so refused is ended by the charger (StopTransactionOnInvalidId,
reason DeAuthorized), which the cloud sees as a start and a stop. A RemoteStartTransaction
from the cloud for such a card is answered Rejected to the cloud and never reaches the
charger. A card the site does not know (a payment terminal's token) is left to the cloud, and a
refusal from the cloud is never turned into an acceptance.

A card the site accepts only until some time (a share of this charger, a card's expiry) keeps
that end when the cloud accepts it: the answer's ``idTagInfo.expiryDate`` is lowered to the
site's end when the cloud gave none or a later one, so a charger caching the answer
(LocalAuthorizeOffline) stops accepting the card when the share ends. Never lengthened.

:meth:`SiteCards.price_stop` prices a session when the store records its stop
(:attr:`Store.pricer <edgegw.store.store.Store.pricer>`): the tariffs and the card's groups of
that moment, from memory.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from edgegw.auth.authorizer import Authorizer
from edgegw.auth.cloudanswers import CardWrite
from edgegw.config import Config
from edgegw.proxy.hooks import SiteOverride
from edgegw.store.sessions import priced_times
from edgegw.store.store import StopFacts
from edgegw.store.tariffs import Priced, Tariffs, price_session

log = logging.getLogger(__name__)


class SiteCards:
    """Implements :class:`edgegw.proxy.local.CardAuthority` on an :class:`Authorizer`."""

    def __init__(self, authorizer: Authorizer, config: Config) -> None:
        self.authorizer = authorizer
        self._free = {c.id: c.free_charging_tag for c in config.chargers if c.free_charging_tag}
        self._free_charging: set[str] = set()
        self._overrides = config.auth.site_overrides_cloud
        self._tariffs = Tariffs.from_config(config.tariffs)

    def use_config(self, config: Config) -> None:
        """A reloaded configuration: the chargers' free-charging tags (added chargers too)."""
        self._free = {c.id: c.free_charging_tag for c in config.chargers if c.free_charging_tag}

    def price_stop(self, facts: StopFacts) -> Priced | None:
        """A :data:`~edgegw.store.store.StopPricer`: the session's price as it stops."""
        if not self._tariffs:
            return None
        start, end, _ = priced_times(
            facts.started_at, facts.start_recorded, facts.stopped_at, facts.stop_recorded
        )
        card = self.authorizer.site_card(facts.charger_id, facts.id_tag)
        return price_session(
            self._tariffs,
            self.authorizer.access,
            facts.charger_id,
            None if card is None else card.key,
            start=start,
            end=end,
            energy_wh=max(0, facts.meter_stop - facts.meter_start),
        )

    def set_free_charging(self, charger_id: str, enabled: bool) -> None:
        """Accept every idTag at ``charger_id`` when the gateway decides (or stop doing so)."""
        if enabled:
            self._free_charging.add(charger_id)
        else:
            self._free_charging.discard(charger_id)
        log.info("%s: free charging %s", charger_id, "on" if enabled else "off")

    def free_charging(self, charger_id: str) -> bool:
        """``charger_id`` is set to free charging."""
        return charger_id in self._free_charging

    def id_tag_info(self, charger_id: str, id_tag: str, *, literal: bool = False) -> dict[str, Any]:
        if charger_id in self._free_charging:
            log.info("%s: card %s Accepted locally (free charging)", charger_id, id_tag)
            return {"status": "Accepted"}
        decision = self.authorizer.decide(
            charger_id,
            id_tag,
            fmt=self.authorizer.charger_format(charger_id),
            free_tag=self._free.get(charger_id),
            literal=literal,
        )
        level = logging.INFO if decision.accepted else logging.WARNING
        log.log(
            level,
            "%s: card %s %s locally (%s): %s",
            charger_id,
            id_tag,
            decision.status.value,
            decision.layer.value,
            decision.reason,
        )
        return dict(decision.id_tag_info)

    def learn(
        self, charger_id: str, id_tag: str, id_tag_info: dict[str, Any], *, literal: bool = False
    ) -> CardWrite | None:
        return self.authorizer.learn_now(
            id_tag, id_tag_info, charger_id=charger_id, literal=literal
        )[1]

    async def answer_cloud(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "GetLocalListVersion":
            return {"listVersion": self.authorizer.local_list_version()}
        return dict(await self.authorizer.send_local_list(payload))

    # ------------------------------------------------------------ deny wins (SiteAuthority)

    def override_answer(
        self, charger_id: str, action: str, request: dict[str, Any], response: dict[str, Any]
    ) -> SiteOverride | None:
        """The site's refusal in place of the cloud's Accepted (Authorize, StartTransaction)."""
        info = response.get("idTagInfo")
        id_tag = request.get("idTag")
        if (
            not self._overrides
            or action not in ("Authorize", "StartTransaction")
            or not isinstance(info, dict)
            or info.get("status") != "Accepted"
            or not isinstance(id_tag, str)
            or charger_id in self._free_charging
        ):
            return None
        verdict = self.authorizer.site_decision(charger_id, id_tag)
        if verdict is None:
            return None
        if verdict.accepted:
            return _shortened(action, id_tag, response, info, verdict.id_tag_info)
        status = verdict.status.value
        return SiteOverride(
            {**response, "idTagInfo": dict(verdict.id_tag_info)},
            f"the cloud accepted card {id_tag} ({action}) but the site refuses it as {status}: "
            f"{verdict.reason}",
            {"id_tag": id_tag, "cloud_status": "Accepted", "site_status": status},
        )

    def refuse_cloud_call(
        self, charger_id: str, action: str, payload: dict[str, Any]
    ) -> SiteOverride | None:
        """Rejected, to the cloud, for a RemoteStartTransaction of a card the site refuses here."""
        id_tag = payload.get("idTag")
        if (
            not self._overrides
            or action != "RemoteStartTransaction"
            or not isinstance(id_tag, str)
            or charger_id in self._free_charging
        ):
            return None
        refusal = self.authorizer.site_refusal(charger_id, id_tag, any_format=True)
        if refusal is None:
            return None
        status = refusal.status.value
        return SiteOverride(
            {"status": "Rejected"},
            f"RemoteStartTransaction for card {id_tag} answered Rejected to the cloud, not "
            f"relayed: the site refuses the card as {status}: {refusal.reason}",
            {"id_tag": id_tag, "site_status": status},
        )


def _shortened(
    action: str,
    id_tag: str,
    response: dict[str, Any],
    info: dict[str, Any],
    site: dict[str, Any],
) -> SiteOverride | None:
    """The cloud's Accepted with the site's end as its ``expiryDate``, when the site's is
    sooner (the cloud gave none, a later one or one that does not parse); else None."""
    site_end = site.get("expiryDate")
    if not isinstance(site_end, str):
        return None
    ends = _instant(site_end)
    if ends is None:
        return None
    cloud_end = info.get("expiryDate")
    cloud = _instant(cloud_end) if isinstance(cloud_end, str) else None
    if cloud is not None and cloud <= ends:
        return None
    said = "no end" if cloud_end is None else f"until {cloud_end}"
    return SiteOverride(
        {**response, "idTagInfo": {**info, "expiryDate": site_end}},
        f"the cloud accepted card {id_tag} ({action}) with {said}; the site accepts it here "
        f"until {site_end}: the charger is told that end",
        {
            "id_tag": id_tag,
            "cloud_status": "Accepted",
            "site_status": "Accepted",
            "cloud_expiry": cloud_end,
            "site_expiry": site_end,
        },
    )


def _instant(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return None if moment.tzinfo is None else moment.timestamp()
