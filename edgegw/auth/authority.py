"""The gateway's card authority as the proxy sees it: the authorizer plus each charger's setup.

:class:`~edgegw.proxy.local.LocalResponder` asks "may this idTag charge here?" and tells what
the cloud answered; this adapter supplies each charger's idTag format and free-charging tag from
the configuration and logs every local decision once with its reason, so a caretaker can see
why a card was refused.

A caretaker can set a charger to *free charging* at runtime (:meth:`SiteCards.set_free_charging`):
every idTag presented there is then accepted whenever the gateway decides itself (standalone,
cloud unreachable or too slow), without asking the lists, the cache or the offline policy. While
the cloud answers, its answer is what the charger gets: the gateway stays invisible to the cloud
and does not rewrite it.
"""

from __future__ import annotations

import logging
from typing import Any

from edgegw.auth.authorizer import Authorizer
from edgegw.config import Config

log = logging.getLogger(__name__)


class SiteCards:
    """Implements :class:`edgegw.proxy.local.CardAuthority` on an :class:`Authorizer`."""

    def __init__(self, authorizer: Authorizer, config: Config) -> None:
        self.authorizer = authorizer
        self._free = {c.id: c.free_charging_tag for c in config.chargers if c.free_charging_tag}
        self._free_charging: set[str] = set()

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

    def id_tag_info(self, charger_id: str, id_tag: str) -> dict[str, Any]:
        if charger_id in self._free_charging:
            log.info("%s: card %s Accepted locally (free charging)", charger_id, id_tag)
            return {"status": "Accepted"}
        decision = self.authorizer.decide(
            charger_id,
            id_tag,
            fmt=self.authorizer.charger_format(charger_id),
            free_tag=self._free.get(charger_id),
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

    async def learn(self, charger_id: str, id_tag: str, id_tag_info: dict[str, Any]) -> None:
        await self.authorizer.learn(id_tag, id_tag_info, charger_id=charger_id)

    async def answer_cloud(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "GetLocalListVersion":
            return {"listVersion": self.authorizer.local_list_version()}
        return dict(await self.authorizer.send_local_list(payload))
