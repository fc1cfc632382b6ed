"""Ask every charger for the meter values load capping and the caretaker need.

The controller learns what each car really draws from its charger's MeterValues: per-phase
``Current.Import``, and ``Current.Offered`` to see the limit in force; the caretaker's
screens, Home Assistant and the live picture show each charger's ``Power.Active.Import``
(without it a charging car shows 0 W). Out of the box an
OCPP 1.6 charger samples only ``Energy.Active.Import.Register``, often once a minute or
never (``MeterValueSampleInterval`` = 0). With a grid meter the controller must then count
every car at its full limit as "maybe building load": the cars' share shrinks and raises
are taken back at once. So when a charger connects, :class:`MeterSampling`:

1. reads ``MeterValuesSampledData``, ``MeterValueSampleInterval`` and
   ``MeterValuesSampledDataMaxLength`` with one ``GetConfiguration``;
2. adds ``Current.Import``, ``Power.Active.Import`` and ``Current.Offered``
   (:data:`AUTOMATIC`, in that order of need) to the measurands if they are missing,
   keeping every measurand already there (the cloud bills with them), within the
   charger's maximum list length; a measurand the charger's model says it cannot sample
   (its ``meter_values.measurands``, e.g. the short list that keeps an ABB Terra AC on old
   firmware from rebooting) is never asked for. A charger that refuses the list is asked
   for a shorter one, the least needed measurand dropped each time, down to
   ``Current.Import`` alone (one unsupported measurand makes OCPP reject the whole list,
   spec-facts §1);
3. sets the sample interval (:func:`sample_interval_for`) when the charger samples less
   often or not at all.

What a charger refuses is logged once, recorded as an event for the caretaker, and kept in
:attr:`MeterSampling.results`; it never fails the charger's session. Load capping stays
safe without these values, only less generous. A charger that does not answer is asked
again later; each reconnect checks again (a factory reset loses the settings), and so does
an accepted ``ChangeConfiguration`` of these keys from the cloud (the cloud's values are
kept, ours are added back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from edgegw.config import ChargerConfig, Config, SiteConfig
from edgegw.energy import sampling201
from edgegw.energy.chargermodels import ChargerModel, model_for
from edgegw.energy.configvalues import comma_list, int_value
from edgegw.ocpp.events import ChargerConnected, ChargerDisconnected, Event
from edgegw.ocpp.versions import OCPP16, OCPP201, is_v2
from edgegw.store.events import EventRecorder
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
__all__ = ["comma_list", "int_value"]  # re-exported: commissioning reads configurations too


class CallFn(Protocol):
    """``(charger_id, action, payload) -> answer``; raises on CALLERROR, timeout or disconnect.
    ``version``: the OCPP version the call is written in (given for a 2.0.1 charger only)."""

    def __call__(
        self, charger_id: str, action: str, payload: JsonDict, /, *, version: str = ...
    ) -> Awaitable[JsonDict]: ...


SAMPLED_DATA: Final = "MeterValuesSampledData"
SAMPLE_INTERVAL: Final = "MeterValueSampleInterval"
MAX_LENGTH: Final = "MeterValuesSampledDataMaxLength"
WANTED: Final = ("Current.Import", "Current.Offered")
"""What load capping reads, in order of need: the cars' draw per phase, the limit in force."""
POWER: Final = "Power.Active.Import"
AUTOMATIC: Final = (WANTED[0], POWER, WANTED[1])
V2_NOT_CONFIGURED: Final = "OCPP 2.x: meter values not configured yet"
"""Said of a charger speaking OCPP 2.1 (2.0.1 ones are configured through their device model,
:mod:`edgegw.energy.sampling201`)."""
"""What the automatic set-up asks for, in order of need: the cars' draw per phase (load
capping), the charger's power (shown to the caretaker and Home Assistant), the limit in force."""

TAKEN: Final = frozenset({"Accepted", "RebootRequired"})
"""``ChangeConfiguration`` statuses that mean the charger took the value."""

_MIN_INTERVAL_S: Final = 5
_MAX_INTERVAL_S: Final = 60
_ROUNDS_PER_SAMPLE: Final = 10


def sample_interval_for(site: SiteConfig | None, model: ChargerModel) -> int:
    """The ``MeterValueSampleInterval`` (s) to ask of a charger of ``model``.

    The model's own ``meter_values.sample_interval_s`` wins; else one sample every ten
    control rounds (10 s at the default 1 s rounds), within 5..60 s: often enough for the
    controller's estimate of the cars' draw, seldom enough for the cloud link and the outbox.
    """
    if model.meter_values.sample_interval_s is not None:
        return model.meter_values.sample_interval_s
    control = site.control_interval if site is not None else 1.0
    return int(min(_MAX_INTERVAL_S, max(_MIN_INTERVAL_S, round(control * _ROUNDS_PER_SAMPLE))))


@dataclass(frozen=True, slots=True)
class SamplingResult:
    """What one charger samples after the gateway asked, and what it refused."""

    charger_id: str
    measurands: tuple[str, ...] | None
    """``MeterValuesSampledData`` as now in force (None: unknown)."""
    interval_s: int | None
    """``MeterValueSampleInterval`` as now in force (None: unknown)."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """Key -> why it is not as the gateway wanted (status, read-only, no room...)."""
    reboot_required: tuple[str, ...] = ()
    """Keys the charger took but applies only after its next reboot."""

    @property
    def samples_currents(self) -> bool:
        return self.measurands is not None and WANTED[0] in self.measurands

    def as_dict(self) -> dict[str, Any]:
        return {
            "charger": self.charger_id,
            "measurands": None if self.measurands is None else list(self.measurands),
            "interval_s": self.interval_s,
            "refused": dict(self.refused),
            "reboot_required": list(self.reboot_required),
        }


class _Unanswered(Exception):
    """The charger did not answer a call (timeout, CALLERROR, disconnect): try again later."""


# --------------------------------------------------------------------------------------------
# Reading a GetConfiguration answer (commissioning reads it too: edgegw.commission)


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One configuration key as a charger reported it."""

    value: str | None
    readonly: bool


def configuration_keys(answer: Mapping[str, Any]) -> dict[str, ConfigEntry]:
    """``{key: entry}`` from a GetConfiguration.conf payload; malformed entries are skipped."""
    keys: dict[str, ConfigEntry] = {}
    for entry in answer.get("configurationKey") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("key"), str):
            value = entry.get("value")
            keys[entry["key"]] = ConfigEntry(
                None if value is None else str(value), _flag(entry.get("readonly", False))
            )
    return keys


# --------------------------------------------------------------------------------------------
# Configuring the chargers


class MeterSampling:
    """Configures each charger's sampled meter values when it connects.

    An event subscriber (``handle``: the daemon's event hub) and a ``CloudCallFilter``
    (``edgegw.proxy.hooks``): the daemon puts it in the hub (and the cloud filters) after the
    load controller, so a charger's safe charging profile goes out first. ``call`` is the
    gateway's call to a charger, ``record_event`` the store's event log (optional).
    :meth:`close` ends every task.
    """

    def __init__(
        self,
        config: Config,
        models: Mapping[str, ChargerModel],
        call: CallFn,
        *,
        record_event: EventRecorder | None = None,
        retry_delays_s: tuple[float, ...] = (5.0, 30.0, 120.0),
        call_timeout_s: float = 30.0,
    ) -> None:
        self._config = config
        self._models = models
        self._call = call
        self._record_event = record_event
        self._retry_delays = retry_delays_s
        self._call_timeout = call_timeout_s
        self._tasks = TaskOwner("sampling")
        self._running: dict[str, asyncio.Task[None]] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._results: dict[str, SamplingResult] = {}
        self._reported: dict[str, dict[str, str]] = {}
        self._versions: dict[str, str] = {}
        """Each charger's OCPP version, as it last connected."""
        """Per charger, the refusals already logged and recorded (each only once)."""
        for charger in config.chargers:  # fail early on a model name that does not exist
            model_for(models, charger)

    def use_config(self, config: Config) -> None:
        """Take a reloaded configuration: chargers added since start are sampled with their
        own model's settings. Raises :class:`~edgegw.energy.chargermodels.ChargerModelError`
        (nothing changed) for a model that does not exist."""
        for charger in config.chargers:
            model_for(self._models, charger)
        self._config = config

    # ------------------------------------------------------------------ results

    @property
    def results(self) -> Mapping[str, SamplingResult]:
        """The latest outcome per charger (absent: not configured yet)."""
        return dict(self._results)

    async def wait_configured(self, charger_id: str, timeout: float = 10.0) -> SamplingResult:
        """Wait until the charger's current connection has been configured (or given up)."""
        async with asyncio.timeout(timeout):
            await self._event(charger_id).wait()
        return self._results[charger_id]

    async def close(self) -> None:
        await self._tasks.close("meter sampling closing")

    def _event(self, charger_id: str) -> asyncio.Event:
        return self._done.setdefault(charger_id, asyncio.Event())

    # ------------------------------------------------------------------ events

    def handle(self, event: Event) -> None:
        """Configure a charger when it connects; stop when it leaves. Nothing to learn from
        the chargers' own calls."""
        if isinstance(event, ChargerConnected):
            self._versions[event.charger_id] = event.version or OCPP16
            if is_v2(event.version) and event.version != OCPP201:
                self._not_managed(event.charger_id)
            else:
                self._configure_soon(event.charger_id)
        elif isinstance(event, ChargerDisconnected):
            task = self._running.pop(event.charger_id, None)
            if task is not None:
                task.cancel("charger disconnected")

    # ------------------------------------------------------------------ CloudCallFilter

    def filter_cloud_call(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        return payload

    def cloud_call_answered(
        self, charger_id: str, action: str, payload: JsonDict, response: JsonDict | None
    ) -> None:
        if self._versions.get(charger_id) == OCPP201:
            if action == "SetVariables" and sampling201.touches_sampling(payload, response):
                log.info(
                    "%s: the cloud set its sampled meter values; checking the meter values "
                    "load capping needs",
                    charger_id,
                )
                self._configure_soon(charger_id)
            return
        if (
            action == "ChangeConfiguration"
            and payload.get("key") in (SAMPLED_DATA, SAMPLE_INTERVAL)
            and response is not None
            and response.get("status") in TAKEN
        ):
            log.info(
                "%s: the cloud changed %s; checking the meter values load capping needs",
                charger_id,
                payload.get("key"),
            )
            self._configure_soon(charger_id)

    # ------------------------------------------------------------------ the work

    def _not_managed(self, charger_id: str) -> None:
        """A 2.x charger: no GetConfiguration (a 1.6 call) is made; said once, no retries."""
        previous = self._running.pop(charger_id, None)
        if previous is not None:
            previous.cancel("charger speaks OCPP 2.x")
        log.info("%s: %s", charger_id, V2_NOT_CONFIGURED)
        self._results[charger_id] = SamplingResult(
            charger_id, None, None, {"OCPP": V2_NOT_CONFIGURED}
        )
        self._event(charger_id).set()

    def _configure_soon(self, charger_id: str) -> None:
        previous = self._running.pop(charger_id, None)
        if previous is not None:
            previous.cancel("configuring again")
        self._event(charger_id).clear()
        try:
            task = self._tasks.spawn(self._configure(charger_id), charger_id)
        except RuntimeError:  # closing
            return
        self._running[charger_id] = task

    async def _configure(self, charger_id: str) -> None:
        try:
            for attempt in range(len(self._retry_delays) + 1):
                try:
                    result = await self._attempt(charger_id)
                except _Unanswered as exc:
                    if attempt == len(self._retry_delays):
                        log.warning(
                            "%s: cannot configure its meter values (%s); load capping "
                            "counts its cars at their limits until it reconnects",
                            charger_id,
                            exc,
                        )
                        await self._finish(
                            SamplingResult(charger_id, None, None, {"GetConfiguration": str(exc)})
                        )
                        return
                    log.info(
                        "%s: meter values not configured yet (%s); retrying in %.0f s",
                        charger_id,
                        exc,
                        self._retry_delays[attempt],
                    )
                    await asyncio.sleep(self._retry_delays[attempt])  # back-off between tries
                    continue
                await self._finish(result)
                return
        except asyncio.CancelledError:
            raise
        except Exception:  # never let this end anything else: it is a convenience
            log.exception("%s: configuring meter values failed", charger_id)
            await self._finish(SamplingResult(charger_id, None, None, {"internal": "see log"}))
        finally:
            if self._running.get(charger_id) is asyncio.current_task():
                del self._running[charger_id]

    async def _ask(
        self, charger_id: str, action: str, payload: JsonDict, *, version: str = OCPP16
    ) -> JsonDict:
        try:
            async with asyncio.timeout(self._call_timeout):
                if version == OCPP16:
                    return await self._call(charger_id, action, payload)
                return await self._call(charger_id, action, payload, version=version)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise _Unanswered(f"{action}: {type(exc).__name__}: {exc}") from None

    async def _attempt201(self, charger_id: str, model: ChargerModel) -> SamplingResult:
        """A 2.0.1 charger: through its device model (:mod:`edgegw.energy.sampling201`)."""

        async def ask(action: str, payload: JsonDict) -> JsonDict:
            return await self._ask(charger_id, action, payload, version=OCPP201)

        outcome = await sampling201.configure(
            ask,
            wanted=AUTOMATIC,
            possible=model.meter_values.measurands,
            interval_s=sample_interval_for(self._config.site, model),
        )
        return SamplingResult(
            charger_id,
            outcome.measurands,
            outcome.interval_s,
            outcome.refused,
            tuple(outcome.reboot_required),
        )

    async def _change(self, charger_id: str, key: str, value: str) -> str:
        answer = await self._ask(charger_id, "ChangeConfiguration", {"key": key, "value": value})
        return str(answer.get("status"))

    async def _attempt(self, charger_id: str) -> SamplingResult:
        charger = self._config.charger(charger_id) or ChargerConfig(id=charger_id)
        model = model_for(self._models, charger)
        if self._versions.get(charger_id) == OCPP201:
            return await self._attempt201(charger_id, model)
        answer = await self._ask(
            charger_id,
            "GetConfiguration",
            {"key": [SAMPLED_DATA, SAMPLE_INTERVAL, MAX_LENGTH]},
        )
        keys = configuration_keys(answer)
        refused: dict[str, str] = {}
        reboot: list[str] = []
        measurands = await self._measurands(charger_id, model, keys, refused, reboot)
        interval = await self._interval(charger_id, model, keys, refused, reboot)
        return SamplingResult(charger_id, measurands, interval, refused, tuple(reboot))

    async def _measurands(
        self,
        charger_id: str,
        model: ChargerModel,
        keys: Mapping[str, ConfigEntry],
        refused: dict[str, str],
        reboot: list[str],
    ) -> tuple[str, ...] | None:
        entry = keys.get(SAMPLED_DATA)
        if entry is None:
            # Without the current list, setting one could drop what the cloud bills with.
            refused[SAMPLED_DATA] = "not reported by GetConfiguration"
            return None
        existing = comma_list(entry.value)
        missing = [m for m in AUTOMATIC if m not in existing]
        possible = model.meter_values.measurands
        if possible is not None:
            unsupported = [m for m in missing if m not in possible]
            missing = [m for m in missing if m in possible]
            if WANTED[0] in unsupported:
                refused[SAMPLED_DATA] = f"its model ({model.id}) cannot sample {WANTED[0]}"
        if not missing:
            return tuple(existing)
        if entry.readonly:
            refused[SAMPLED_DATA] = "read-only"
            return tuple(existing)
        room = int_value(keys[MAX_LENGTH].value) if MAX_LENGTH in keys else None
        if room is not None:
            if len(existing) >= room:
                refused[SAMPLED_DATA] = (
                    f"the list is full ({MAX_LENGTH} = {room}): remove a measurand to make room "
                    f"for {missing[0]}"
                )
                return tuple(existing)
            missing = missing[: room - len(existing)]
        asked = list(missing)
        # All of it first; refused, the least needed measurand goes, one at a time.
        candidates = [missing[:count] for count in range(len(missing), 0, -1)]
        status = ""
        for adding in candidates:
            wanted = [*existing, *adding]
            status = await self._change(charger_id, SAMPLED_DATA, ",".join(wanted))
            if status in TAKEN:
                if status == "RebootRequired":
                    reboot.append(SAMPLED_DATA)
                left_out = [m for m in asked if m not in wanted]
                if left_out and SAMPLED_DATA not in refused:
                    refused[SAMPLED_DATA] = f"{', '.join(left_out)}: not taken"
                return tuple(wanted)
        refused[SAMPLED_DATA] = f"answered {status}"
        return tuple(existing)

    async def _interval(
        self,
        charger_id: str,
        model: ChargerModel,
        keys: Mapping[str, ConfigEntry],
        refused: dict[str, str],
        reboot: list[str],
    ) -> int | None:
        wanted = sample_interval_for(self._config.site, model)
        entry = keys.get(SAMPLE_INTERVAL)
        current = None if entry is None else int_value(entry.value)
        if current is not None and 0 < current <= wanted:
            return current  # samples at least as often already (the cloud may want that)
        if entry is not None and entry.readonly:
            refused[SAMPLE_INTERVAL] = "read-only"
            return current
        status = await self._change(charger_id, SAMPLE_INTERVAL, str(wanted))
        if status in TAKEN:
            if status == "RebootRequired":
                reboot.append(SAMPLE_INTERVAL)
            return wanted
        refused[SAMPLE_INTERVAL] = f"answered {status}"
        return current

    async def _finish(self, result: SamplingResult) -> None:
        charger_id = result.charger_id
        self._results[charger_id] = result
        reported = self._reported.setdefault(charger_id, {})
        news = {k: v for k, v in result.refused.items() if reported.get(k) != v}
        if news:
            reported.update(news)
            what = "; ".join(f"{key}: {why}" for key, why in sorted(news.items()))
            if result.samples_currents:
                consequence = "load capping still sees its cars' currents"
            else:
                consequence = (
                    "its cars count at their limits, so the site is shared less generously"
                )
            message = (
                f"{charger_id} does not sample all that load capping asks for ({what}); "
                f"{consequence}"
            )
            log.warning("%s", message)
            await self._event_safely(message, charger_id, result)
        else:
            log.info(
                "%s: samples %s every %s s%s",
                charger_id,
                ",".join(result.measurands or ()) or "nothing known",
                result.interval_s,
                " after its next reboot" if result.reboot_required else "",
            )
        for key in [k for k in reported if k not in result.refused]:
            del reported[key]  # taken now: report again if it is ever refused again
        self._event(charger_id).set()

    async def _event_safely(self, message: str, charger_id: str, result: SamplingResult) -> None:
        if self._record_event is None:
            return
        try:
            await self._record_event(
                "meter_sampling", message, charger_id=charger_id, data=result.as_dict()
            )
        except Exception:
            log.exception("%s: recording the meter-sampling event failed", charger_id)


def _flag(value: object) -> bool:
    """OCPP's ``readonly`` is a boolean; some chargers send it as the string "false"."""
    if isinstance(value, str):
        return value.strip().casefold() in ("true", "1", "yes")
    return bool(value)
