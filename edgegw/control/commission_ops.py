"""Control-socket ops for an installer on site: probe, configure and commission a charger.

All three talk to a connected charger with the gateway's own calls (``Gateway.call``: ids that
never collide with the cloud's, answers that never go upstream) and are admin-only.

- ``chargers.probe`` (charger, profile_id?, report_timeout=60): ``GetConfiguration`` of every
  key (an OCPP 2.x station: its device model, ``GetBaseReport`` and the ``NotifyReport`` parts
  it sends, see :mod:`edgegw.commission.probe201`; every variable as a row, a report that did
  not complete in time said so with what is missing), read into what the gateway cares about
  (feature profiles, smart-charging keys, local-list sizes, measurands, connectors and phase
  rotation) next to the BootNotification's vendor and model. Says which
  ``hardware/chargers/`` profile fits, and proposes the text of a profile built from what was
  probed (:func:`~edgegw.energy.chargermodels.model_from_configuration`) for the installer to
  review and keep. Recorded in ``chargers.capabilities.probe``.
- ``chargers.configure`` (charger, interval=10): sets ``MeterValuesSampledData`` so that it
  holds what load capping and the records need (``Current.Import`` first, then
  ``Current.Offered``, ``Energy.Active.Import.Register``, ``Power.Active.Import``), keeping
  every measurand already there (the cloud bills with them), and ``MeterValueSampleInterval``.
  Reports, per key, what the charger answered. OCPP 1.6 has no way to ask for phases: a
  charger that measures per phase reports ``Current.Import`` per phase by itself; the
  commissioning checks that it does.
- ``commission.run`` (charger, card?, tap=false, step_timeout=15, tap_timeout=60): the
  checklist against the live charger, each step passed, failed or skipped with its detail,
  what to do next and how long it took. The report is returned and recorded (an event of kind
  ``commissioning`` with the whole report, a summary in ``chargers.capabilities``).

**The test charging profile and load capping.** Without load capping the commissioning puts a
profile of its own on the charger (ChargePointMaxProfile, else TxDefaultProfile, per the
charger's model, at the model's minimum current and its highest usable stack level, with an id
from the gateway's reserved range that the controller never uses), reads the composite schedule
to see that it is in force, and clears it by id. With load capping (``gateway.controller``) it
does not: the controller keeps its cap at the highest stack level the charger allows, so a test
profile could only go *at* that level (a profile with the same connector, purpose and stack
level replaces the controller's cap on the charger without the controller knowing, and
clearing the test profile afterwards would leave the charger uncapped) or below it (dormant:
within a purpose the highest stack level wins, so the composite schedule would show nothing).
Instead the run checks the cap the controller already keeps there: acknowledged by the charger
(no profile refused or unanswered) and in force in the composite schedule, no higher than the
limit the controller holds the charger at.

The work is in :mod:`edgegw.commission` (the checklist and its steps, reading a probe, setting
the meter values). Steps learn what the charger sends from
:class:`~edgegw.commission.observer.CommissionObserver`, which the daemon creates, hands to
these ops and subscribes to the chargers' events before the OCPP server starts.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from edgegw.auth.idtags import CardId, CardIdError, parse_card_id
from edgegw.commission.checklist import Checklist
from edgegw.commission.configure import set_interval, set_measurands
from edgegw.commission.devicemodel import missing_variables, summarize_device_model
from edgegw.commission.devicemodel import rows as device_model_rows
from edgegw.commission.observer import CommissionObserver
from edgegw.commission.probe import (
    CURRENT,
    match_profile,
    missing_keys,
    profile_differences,
    proposed_profile_id,
    summarize_configuration,
)
from edgegw.commission.probe201 import (
    REPORT_TIMEOUT,
    ReportRefused,
    as_configuration,
    read_device_model,
)
from edgegw.commission.run import JsonDict, NoAnswer, RunOptions, SiteView, iso, status_of
from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.energy.chargermodels import (
    DEFAULT_MODEL_ID,
    ChargerModel,
    ChargerModelError,
    model_for,
    model_from_configuration,
    model_to_toml,
)
from edgegw.energy.sampling import (
    MAX_LENGTH,
    SAMPLE_INTERVAL,
    SAMPLED_DATA,
    configuration_keys,
    int_value,
)
from edgegw.hardware_catalogue import HardwareCatalogue, HardwareError
from edgegw.ocpp.versions import is_v2
from edgegw.proxy.session import CallFailed
from edgegw.security.redact import MASK, SECRET_KEYS
from edgegw.services.ports import ChargerCall
from edgegw.store.capabilities import CapabilityStore
from edgegw.store.store import ChargerRow, Store

if TYPE_CHECKING:
    from edgegw.store.events import EventRecorder

log = logging.getLogger(__name__)

CALL_TIMEOUT: Final = 20.0
STEP_TIMEOUT: Final = 15.0
TAP_TIMEOUT: Final = 60.0
DEFAULT_INTERVAL_S: Final = 10
_PROFILE_ID: Final = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class _Probed:
    """What a probe read, 1.6 or 2.x, before the part both share (profile, record, event)."""

    summary: JsonDict
    missing: list[str]
    keys: JsonDict
    answer: JsonDict
    """A GetConfiguration answer (2.x: :func:`as_configuration`) the proposed profile is
    built from."""
    source: str
    count: str
    extra: JsonDict = field(default_factory=dict)


class CommissionOps:
    """Registers ``chargers.probe``, ``chargers.configure`` and ``commission.run``.

    Over narrow parts: the ``site`` a run reads, the ``observer`` of what chargers send (the
    daemon subscribes it before chargers connect), the ``store``, ``call`` (the gateway's own
    calls) and where to ``record`` events. ``models`` defaults to the site's hardware
    catalogue.
    """

    def __init__(
        self,
        site: SiteView,
        observer: CommissionObserver,
        store: Store,
        call: ChargerCall,
        record: EventRecorder | None,
        *,
        models: Mapping[str, ChargerModel] | None = None,
        call_timeout: float = CALL_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._site = site
        self._store = store
        self._call = call
        self._record = record
        self._models = dict(models) if models is not None else None
        self._clock = clock
        self._timeout = call_timeout
        self.observer = observer
        self._running: set[str] = set()
        self._report_ids = int(clock()) % 1_000_000 * 1000
        """GetBaseReport requestIds: from the clock, so a restarted daemon does not reuse one
        a station may still be reporting on."""

    def register(self, server: ControlServer) -> None:
        ops: list[tuple[str, Callable[[dict[str, Any]], Awaitable[Any]], str]] = [
            (
                "chargers.probe",
                self.probe,
                "Read a connected charger's configuration, record its capabilities and say "
                "which hardware profile fits (args: charger, profile_id).",
            ),
            (
                "chargers.configure",
                self.configure,
                "Set the meter values the gateway needs (args: charger, interval=10).",
            ),
            (
                "commission.run",
                self.commission,
                "Run the commissioning checklist against a live charger (args: charger, card, "
                "tap, step_timeout, tap_timeout).",
            ),
        ]
        for name, handler, description in ops:
            server.register(name, handler, admin=True, description=description)

    # ------------------------------------------------------------------ chargers.probe

    async def probe(self, args: dict[str, Any]) -> JsonDict:
        charger_id = self._connected_charger(args)
        wanted_id = get_arg(args, "profile_id", str, None)
        if wanted_id is not None and not _PROFILE_ID.fullmatch(wanted_id):
            raise ControlError(
                ErrorCode.BAD_ARGS,
                f"profile_id {wanted_id!r}: use lowercase letters, digits and '-', starting "
                "with a letter or digit (it is also the file name)",
            )
        version = self.observer.version_of(charger_id)
        if is_v2(version):
            timeout = get_arg(args, "report_timeout", float, REPORT_TIMEOUT)
            if not 0 < timeout <= 600:
                raise ControlError(ErrorCode.BAD_ARGS, "report_timeout must be 0..600 s")
            probed = await self._device_model(charger_id, version, timeout)
        else:
            answer = await self._ask(charger_id, "GetConfiguration", {})
            keys = configuration_keys(answer)
            summary = summarize_configuration(keys)
            probed = _Probed(
                summary=summary,
                missing=missing_keys(keys, summary["feature_profiles"]),
                keys={
                    k: {
                        "value": MASK if k.casefold() in SECRET_KEYS else e.value,
                        "readonly": e.readonly,
                    }
                    for k, e in sorted(keys.items())
                },
                answer=answer,
                source="GetConfiguration",
                count=f"{len(keys)} configuration keys",
            )
        row = await self._row(charger_id)
        vendor, model = (row.vendor, row.model) if row is not None else (None, None)
        models = self._load_models()
        match = match_profile(models, vendor, model)
        configured = self._site.config.charger(charger_id)
        base = models[match.model_id] if match.model_id else models[DEFAULT_MODEL_ID]
        profile_id = wanted_id or proposed_profile_id(vendor, model, charger_id)
        label = " ".join(x for x in (vendor, model) if x) or charger_id
        proposed = model_from_configuration(
            probed.answer, base=base, model_id=profile_id, name=label, products=[label]
        )
        firmware = row.firmware if row is not None and row.firmware else "unknown"
        notes = list(proposed.notes)
        if probed.source != "GetConfiguration":
            notes = [n.replace("from GetConfiguration", f"from {probed.source}") for n in notes]
        proposed = proposed.model_copy(
            update={
                "notes": [
                    *notes,
                    f"probed from {charger_id} ({label}, firmware {firmware}) on "
                    f"{iso(self._clock())[:10]}",
                ]
            }
        )
        differences = profile_differences(proposed, base) if match.model_id else []
        in_use = configured.model if configured is not None and configured.model else None
        record: JsonDict = {
            "at": self._clock(),
            "vendor": vendor,
            "model": model,
            "serial": row.serial if row is not None else None,
            "firmware": row.firmware if row is not None else None,
            "ocpp_version": version,
            **probed.summary,
            "missing_keys": probed.missing,
            "profile": {
                "fits": match.model_id,
                "match": match.how,
                "candidates": list(match.candidates),
                "configured": in_use,
                "differences": differences,
            },
            "keys": probed.keys,
            **probed.extra,
        }
        store = self.store()
        await CapabilityStore(store.db, clock=self._clock).set_probe(charger_id, record)
        fits = match.model_id or f"none (the default {DEFAULT_MODEL_ID} applies)"
        await self._event(
            "probe",
            f"{charger_id} probed: {probed.count}, profile {fits}",
            charger_id,
            {"profile": record["profile"], "missing_keys": record["missing_keys"]},
        )
        log.info("%s probed: %s, profile %s", charger_id, probed.count, fits)
        return {
            "charger": charger_id,
            **record,
            "proposed_profile": {
                "id": profile_id,
                "base": base.id,
                "toml": model_to_toml(proposed),
            },
        }

    async def _device_model(self, charger_id: str, version: str, timeout: float) -> _Probed:
        """A 2.x station's probe: its device model (GetBaseReport, NotifyReport parts)."""

        async def ask(cid: str, action: str, payload: JsonDict, version: str) -> JsonDict:
            return await self._call(cid, action, payload, self._timeout, version=version)

        self._report_ids += 1
        try:
            reported = await read_device_model(
                ask,
                self.observer,
                charger_id,
                version,
                request_id=self._report_ids,
                timeout=timeout,
            )
        except ReportRefused as exc:
            raise ControlError(
                ErrorCode.UNAVAILABLE, f"{charger_id} answered GetBaseReport with {exc}"
            ) from None
        except (CallFailed, LookupError) as exc:
            reason = str(exc) if isinstance(exc, CallFailed) else "it disconnected"
            raise ControlError(
                ErrorCode.UNAVAILABLE, f"{charger_id} did not answer GetBaseReport: {reason}"
            ) from None
        model = reported.model
        summary = summarize_device_model(model)
        summary["report"]["missing"] = reported.missing
        variables = device_model_rows(model)
        return _Probed(
            summary=summary,
            missing=missing_variables(model),
            keys={
                r["variable"]: {"value": r["value"], "readonly": r["readonly"]} for r in variables
            },
            answer=as_configuration(summary),
            source="a 2.0.1 device model (GetBaseReport)",
            count=f"{len(variables)} device model variables"
            + ("" if model.complete else " (report incomplete)"),
            extra={"variables": variables, "report_request_id": reported.request_id},
        )

    # ------------------------------------------------------------------ chargers.configure

    async def configure(self, args: dict[str, Any]) -> JsonDict:
        interval = get_arg(args, "interval", int, DEFAULT_INTERVAL_S)
        if not 1 <= interval <= 3600:
            raise ControlError(ErrorCode.BAD_ARGS, "interval must be 1..3600 seconds")
        charger_id = self._connected_charger(args)
        answer = await self._ask(
            charger_id, "GetConfiguration", {"key": [SAMPLED_DATA, SAMPLE_INTERVAL, MAX_LENGTH]}
        )
        keys = configuration_keys(answer)

        async def change(key: str, value: str) -> str:
            payload = {"key": key, "value": value}
            return status_of(await self._ask(charger_id, "ChangeConfiguration", payload))

        measurands = await set_measurands(change, keys)
        sampling = await set_interval(change, keys, interval)
        results = [measurands, sampling]
        ok = all(r["status"] in ("Accepted", "RebootRequired", "Unchanged") for r in results)
        reboot = [r["key"] for r in results if r["status"] == "RebootRequired"]
        out: JsonDict = {
            "charger": charger_id,
            "ok": ok,
            "keys": results,
            "measurands": measurands["value_list"],
            "samples_current": CURRENT in measurands["value_list"],
            "interval_s": int_value(sampling["value"]),
            "reboot_required": reboot,
        }
        what = "; ".join(f"{r['key']}: {r['status']}" for r in results)
        await self._event("sampling", f"{charger_id} configured: {what}", charger_id, out)
        log.info("%s: meter sampling configured (%s)", charger_id, what)
        return out

    # ------------------------------------------------------------------ commission.run

    async def commission(self, args: dict[str, Any]) -> JsonDict:
        charger_id = get_arg(args, "charger", str).strip()
        options = self._options(args)
        row = await self._row(charger_id)
        if self._site.config.charger(charger_id) is None and row is None:
            raise self._unknown(charger_id)
        if charger_id in self._running:
            raise ControlError(
                ErrorCode.CONFLICT, f"a commissioning run for {charger_id} is already going on"
            )
        self._running.add(charger_id)
        try:
            checklist = Checklist(
                site=self._site,
                observer=self.observer,
                store=self.store,
                call=self.call,
                clock=self._clock,
                charger_id=charger_id,
                row=row,
                model=self.model_of(charger_id),
                options=options,
            )
            report = await checklist.execute()
        finally:
            self._running.discard(charger_id)
        await self._save(charger_id, report)
        return report

    def _options(self, args: dict[str, Any]) -> RunOptions:
        card_text = get_arg(args, "card", str, None)
        card: CardId | None = None
        if card_text is not None:
            try:
                card = parse_card_id(card_text)
            except CardIdError as exc:
                raise ControlError(ErrorCode.BAD_ARGS, f"card {card_text!r}: {exc}") from None
        step_timeout = get_arg(args, "step_timeout", float, STEP_TIMEOUT)
        tap_timeout = get_arg(args, "tap_timeout", float, TAP_TIMEOUT)
        if not 0 < step_timeout <= 600 or not 0 < tap_timeout <= 3600:
            raise ControlError(
                ErrorCode.BAD_ARGS, "step_timeout must be 0..600 s and tap_timeout 0..3600 s"
            )
        return RunOptions(
            card, card_text, get_arg(args, "tap", bool, False), step_timeout, tap_timeout
        )

    async def _save(self, charger_id: str, report: JsonDict) -> None:
        failed = [s["name"] for s in report["steps"] if s["status"] == "fail"]
        summary = {
            "at": report["finished_at"],
            "passed": report["passed"],
            "failed": failed,
            "skipped": [s["name"] for s in report["steps"] if s["status"] == "skip"],
        }
        verdict = "passed" if report["passed"] else f"FAILED ({', '.join(failed)})"
        await CapabilityStore(self._store.db, clock=self._clock).set_commissioning(
            charger_id, summary
        )
        await self._event(
            "commissioning", f"{charger_id} commissioning {verdict}", charger_id, report
        )
        log.info("%s commissioning %s", charger_id, verdict)

    # ------------------------------------------------------------------ helpers

    def _load_models(self) -> dict[str, ChargerModel]:
        if self._models is None:
            try:
                self._models = HardwareCatalogue.for_config(self._site.config).charger_models()
            except HardwareError as exc:
                raise ControlError(
                    ErrorCode.UNAVAILABLE, f"the charger models cannot be read: {exc}"
                ) from None
        return self._models

    def model_of(self, charger_id: str) -> ChargerModel:
        models = self._load_models()
        try:
            return model_for(models, self._site.config.charger(charger_id))
        except ChargerModelError:
            return models[DEFAULT_MODEL_ID]

    def store(self) -> Store:
        return self._store

    async def _row(self, charger_id: str) -> ChargerRow | None:
        rows = await self.store().chargers()
        return next((r for r in rows if r.id == charger_id), None)

    def _unknown(self, charger_id: str) -> ControlError:
        known = ", ".join(c.id for c in self._site.config.chargers) or "none"
        return ControlError(
            ErrorCode.NOT_FOUND,
            f"no charger {charger_id!r}: it is not in the configuration and never connected "
            f"(configured: {known})",
        )

    def _connected_charger(self, args: dict[str, Any]) -> str:
        charger_id = get_arg(args, "charger", str).strip()
        if charger_id in self._site.sessions:
            return charger_id
        if self._site.config.charger(charger_id) is None:
            raise self._unknown(charger_id)
        raise ControlError(
            ErrorCode.UNAVAILABLE,
            f"{charger_id} is not connected to the gateway; check that it points at the "
            "gateway and try again once it shows as connected (`edgegw chargers show "
            f"{charger_id}`)",
        )

    async def call(
        self, charger_id: str, action: str, payload: JsonDict, timeout: float | None = None
    ) -> JsonDict:
        """A gateway call; raises :class:`NoAnswer` with the reason when there is no answer."""
        try:
            return await self._call(charger_id, action, payload, timeout or self._timeout)
        except CallFailed as exc:
            raise NoAnswer(str(exc)) from None
        except LookupError:  # ChargerNotConnected, or it left between the check and the call
            raise NoAnswer(f"{charger_id} is not connected") from None

    async def _ask(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        try:
            return await self.call(charger_id, action, payload)
        except NoAnswer as exc:
            raise ControlError(
                ErrorCode.UNAVAILABLE, f"{charger_id} did not answer {action}: {exc}"
            ) from None

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    async def _event(self, kind: str, message: str, charger_id: str, data: JsonDict) -> None:
        try:
            record = self._record or self._store.event
            await record(kind, message, charger_id=charger_id, data=data)
        except Exception:  # the work was done; a full disk must not hide its result
            log.exception("%s: could not record the %s event", charger_id, kind)
