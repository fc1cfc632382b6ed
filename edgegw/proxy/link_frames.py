"""Frame handling of the relay core: calls checked against the schemas and the allowed
actions, transaction ids translated each way, the site's word on cloud answers, bad frames
answered and logged.

Only OCPP 1.6 frames are translated or overruled. A 2.x link (the charger negotiated
``ocpp2.0.1`` or ``ocpp2.1``) relays every call and answer as sent: no transaction-id
remapping, no site rewrite of Authorize answers, no cloud-profile filter; its calls are checked
against the 2.0.1 schemas (``ocpp2.1``: not checked), and an invalid TransactionEvent or
MeterValues is relayed all the same, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable

from edgegw.ocpp.versions import OCPP201
from edgegw.proxy import frames, schemas
from edgegw.proxy.frames import Call, CallError, CallResult, FrameError
from edgegw.proxy.hooks import SITE_CHECKED_ANSWERS
from edgegw.proxy.link_commands import (
    Command,
    SiteOverridden,
    ToCharger,
    ToCloud,
    _usable_transaction_message,
)
from edgegw.proxy.link_state import _LinkState
from edgegw.security.loggable import loggable

_V2_TOLERATED = frozenset({"TransactionEvent", "MeterValues"})
"""2.0.1 charger calls relayed even when the schema finds fault with them: they carry the
transaction data the cloud bills from (the 1.6 path relays its transaction messages alike)."""


class _FrameHandling(_LinkState):
    """Checking and translating the frames that cross a link."""

    def _site_word(
        self, call: Call, answer: CallResult | CallError, out: list[Command]
    ) -> CallResult | CallError:
        """The cloud's answer to a charger call, unless the site's records overrule it."""
        if (
            self._site_answer is None
            or not self._v16
            or call.action not in SITE_CHECKED_ANSWERS
            or not isinstance(answer, CallResult)
        ):
            return answer
        override = self._site_answer(call.action, call.payload, answer.payload)
        if override is None:
            return answer
        out.append(SiteOverridden(call.action, override))
        return frames.make_result(answer.id, override.payload)

    def _for_cloud(self, call: Call) -> Call:
        """The charger's call as the cloud must see it: with the cloud's transaction id."""
        if not self._v16:
            return call
        local = call.payload.get("transactionId")
        if call.action in ("StopTransaction", "MeterValues") and isinstance(local, int):
            cloud = self._tx_map.get(local)
            if cloud is not None:
                return frames.make_call(
                    call.id, call.action, {**call.payload, "transactionId": cloud}
                )
        return call

    def _for_charger(self, call: Call) -> tuple[Call, Call]:
        """The cloud's call with the charger's own transaction ids, and as the charger must see
        it: those ids and the site cap (the filter's rewrite). The first is what the cloud asked
        for (the filters hear it once the charger answered); either is ``call`` itself when
        nothing changes, so a call nobody rewrites is relayed byte for byte."""
        own = self._own_ids(call)
        if self._cloud_filter is None:
            return own, own
        payload = self._cloud_filter(own.action, own.payload)
        if payload is own.payload:
            return own, own
        return own, frames.make_call(call.id, call.action, payload)

    def _own_ids(self, call: Call) -> Call:
        """The cloud's call with the charger's own transaction ids (1.6 only)."""
        payload = call.payload  # 2.x: the charger's own transaction ids, nothing to map
        if self._v16 and call.action == "RemoteStopTransaction":
            local = self._to_local.get(payload.get("transactionId"))  # type: ignore[arg-type]
            if local is not None:
                payload = {**payload, "transactionId": local}
        elif self._v16 and call.action == "SetChargingProfile":
            profile = payload.get("csChargingProfiles")
            if isinstance(profile, dict):
                local = self._to_local.get(profile.get("transactionId"))  # type: ignore[arg-type]
                if local is not None:
                    payload = {**payload, "csChargingProfiles": {**profile, "transactionId": local}}
        if payload is call.payload:
            return call
        return frames.make_call(call.id, call.action, payload)

    def _check_call(self, call: Call, allowed: frozenset[str], side: str) -> CallError | None:
        if not self._v16:
            return self._check_v2_call(call, side)
        if call.action not in schemas.ALL_ACTIONS:
            action = loggable(call.action)
            self._quiet.warning(
                f"unknown:{side}", "%s: %s sent unknown action %s", self.charger_id, side, action
            )
            return frames.make_error(call.id, "NotImplemented", f"unknown action {action}")
        if call.action not in allowed:
            self._quiet.warning(
                f"direction:{side}",
                "%s: %s sent %s, which only the other side may send",
                self.charger_id,
                side,
                call.action,
            )
            return frames.make_error(
                call.id, "NotSupported", f"{call.action} is not sent by a {side}"
            )
        if self._validate:
            try:
                schemas.check_call(call.action, call.payload)
            except schemas.SchemaViolation as exc:
                if side == "charger" and _usable_transaction_message(call):
                    # Chargers re-send a transaction message they got an error for, for ever
                    # (Alfen's MeterValues with context "CurrentMax"): it goes on as sent.
                    self._quiet.warning(
                        f"tolerated:{call.action}",
                        "%s: charger sent an invalid %s (%s); relayed all the same: an error "
                        "would make it send the message again and again",
                        self.charger_id,
                        call.action,
                        loggable(str(exc), 300, quote=False),
                    )
                    return None
                self._quiet.warning(
                    f"invalid:{side}",
                    "%s: %s sent an invalid %s: %s",
                    self.charger_id,
                    side,
                    call.action,
                    loggable(str(exc), 300, quote=False),
                )
                return frames.make_error(call.id, exc.code, exc.description)
        return None

    def _check_v2_call(self, call: Call, side: str) -> CallError | None:
        """A 2.0.1 call: a known action with a valid payload (2.1: anything goes through)."""
        if self.version != OCPP201:
            return None
        if call.action not in schemas.ACTIONS_201:
            action = loggable(call.action)
            self._quiet.warning(
                f"unknown:{side}", "%s: %s sent unknown action %s", self.charger_id, side, action
            )
            return frames.make_error(call.id, "NotImplemented", f"unknown action {action}")
        if self._validate:
            try:
                schemas.check_call_201(call.action, call.payload)
            except schemas.SchemaViolation as exc:
                if side == "charger" and call.action in _V2_TOLERATED:
                    # Billing data: an error would make the station send it again and again,
                    # then drop it (as for 1.6); the cloud gets it as sent.
                    self._quiet.warning(
                        f"tolerated:{call.action}",
                        "%s: charger sent an invalid %s (%s); relayed all the same: an error "
                        "could lose the transaction data it carries",
                        self.charger_id,
                        call.action,
                        loggable(str(exc), 300, quote=False),
                    )
                    return None
                self._quiet.warning(
                    f"invalid:{side}",
                    "%s: %s sent an invalid %s: %s",
                    self.charger_id,
                    side,
                    call.action,
                    loggable(str(exc), 300, quote=False),
                )
                return frames.make_error(call.id, exc.code, exc.description)
        return None

    def _bad_frame(
        self, side: str, exc: FrameError, reply: Callable[[str], ToCharger | ToCloud]
    ) -> list[Command]:
        self.stats.rejected += 1
        if not exc.reply:
            self._quiet.warning(
                f"dropped:{side}",
                "%s: dropped a malformed frame from the %s: %s",
                self.charger_id,
                side,
                loggable(str(exc), 300, quote=False),
            )
            return []
        self._quiet.warning(
            f"malformed:{side}",
            "%s: malformed frame from the %s: %s",
            self.charger_id,
            side,
            loggable(str(exc), 300, quote=False),
        )
        error = frames.make_error(exc.message_id, exc.code, exc.description)
        return [reply(error.raw)]
