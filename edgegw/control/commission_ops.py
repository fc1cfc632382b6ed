"""Control-socket ops for an installer on site: probe, configure and commission a charger.

All three talk to a connected charger with the gateway's own calls (``Gateway.call``: ids that
never collide with the cloud's, answers that never go upstream) and are admin-only.

- ``chargers.probe`` (charger, profile_id?): ``GetConfiguration`` of every key, read into what
  the gateway cares about (feature profiles, smart-charging keys, local-list sizes, measurands,
  connectors and phase rotation) next to the BootNotification's vendor and model. Says which
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

Steps learn what the charger sends from :class:`CommissionObserver`, a ``ChargerObserver``
the daemon adds to its observers (``gateway.observers.append(ops.observer)``) before the OCPP
server starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from edgegw.auth.idtags import (
    CardId,
    CardIdError,
    IdTagFormat,
    interpretations,
    parse_card_id,
    render,
)
from edgegw.config import ChargerConfig
from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.energy.chargermodels import (
    DEFAULT_MODEL_ID,
    ChargerModel,
    ChargerModelError,
    Purpose,
    RateUnit,
    load_models,
    model_for,
    model_from_configuration,
    model_to_toml,
)
from edgegw.energy.meters import default_profiles_dir
from edgegw.energy.profiles import (
    NOMINAL_VOLTAGE,
    ProfileKey,
    build_set_charging_profile,
    iec_limit,
)
from edgegw.energy.sampling import MAX_LENGTH, SAMPLE_INTERVAL, SAMPLED_DATA, WANTED
from edgegw.proxy.session import CallFailed
from edgegw.security.redact import MASK, SECRET_KEYS
from edgegw.store.capabilities import CapabilityStore
from edgegw.store.store import ChargerRow, Store

if TYPE_CHECKING:
    from edgegw.daemon import Gateway

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]

CALL_TIMEOUT: Final = 20.0
STEP_TIMEOUT: Final = 15.0
TAP_TIMEOUT: Final = 60.0
DEFAULT_INTERVAL_S: Final = 10
COMMISSION_PROFILE_SLOT: Final = 999
"""The test profile's id is ``profile_id_base + 999``: in the gateway's range (cloud profiles
are moved out of it), and a slot the load controller never uses."""
CONFIGURE_MEASURANDS: Final = (*WANTED, "Energy.Active.Import.Register", "Power.Active.Import")
"""What ``chargers.configure`` asks for, most needed first."""
CURRENT: Final = "Current.Import"
_TAKEN: Final = frozenset({"Accepted", "RebootRequired"})
_TOLERANCE_A: Final = 0.1
_COMPOSITE_DURATION_S: Final = 300
_PROFILE_ID: Final = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_RUN_KEYS: Final = ("NumberOfConnectors", "HeartbeatInterval", "SupportedFeatureProfiles")

StepStatus = Literal["pass", "fail", "skip"]


# --------------------------------------------------------------------------------------------
# What the chargers send


class ChargerGone(LookupError):
    """The charger disconnected while a step waited for it."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One charger call and the answer it got, as the observer saw it."""

    at: float
    action: str
    request: JsonDict
    response: JsonDict


@dataclass(slots=True)
class _Waiter:
    charger_id: str
    actions: frozenset[str]
    since: float
    predicate: Callable[[Exchange], bool]
    future: asyncio.Future[Exchange]


class CommissionObserver:
    """Keeps each charger's recent calls, so a step can look back at them or wait for one.

    A ``ChargerObserver`` (``edgegw.proxy.hooks``): the daemon appends it to
    ``gateway.observers`` before chargers connect. ``history`` bounds what is kept per charger.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, history: int = 200) -> None:
        self._clock = clock
        self._history = history
        self._recent: dict[str, deque[Exchange]] = {}
        self._connected_at: dict[str, float] = {}
        self._waiters: list[_Waiter] = []

    # ------------------------------------------------------------------ ChargerObserver

    def charger_connected(self, charger_id: str) -> None:
        self._connected_at[charger_id] = self._clock()

    def charger_disconnected(self, charger_id: str) -> None:
        self._connected_at.pop(charger_id, None)
        for waiter in [w for w in self._waiters if w.charger_id == charger_id]:
            self._waiters.remove(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(ChargerGone(f"{charger_id} disconnected"))

    def charger_exchanged(
        self, charger_id: str, action: str, request: JsonDict, response: JsonDict
    ) -> None:
        exchange = Exchange(self._clock(), action, request, response)
        recent = self._recent.get(charger_id)
        if recent is None:
            recent = self._recent[charger_id] = deque(maxlen=self._history)
        recent.append(exchange)
        for waiter in list(self._waiters):
            if waiter.charger_id == charger_id and _wanted(waiter, exchange):
                self._waiters.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(exchange)

    # ------------------------------------------------------------------ queries

    def connected_since(self, charger_id: str) -> float | None:
        """When the charger's current connection started (None: not seen connecting)."""
        return self._connected_at.get(charger_id)

    def seen(
        self,
        charger_id: str,
        actions: Iterable[str],
        *,
        since: float = -math.inf,
        predicate: Callable[[Exchange], bool] | None = None,
    ) -> list[Exchange]:
        """The calls of ``actions`` the charger made since ``since``, oldest first."""
        wanted = frozenset(actions)
        return [
            e
            for e in self._recent.get(charger_id, ())
            if e.action in wanted and e.at >= since and (predicate is None or _safe(predicate, e))
        ]

    async def wait(
        self,
        charger_id: str,
        actions: Iterable[str],
        *,
        since: float,
        timeout: float,
        predicate: Callable[[Exchange], bool] = lambda _e: True,
    ) -> Exchange:
        """The first call of ``actions`` since ``since`` that satisfies ``predicate``, past or
        future. Raises ``TimeoutError``, or :class:`ChargerGone` if the charger disconnects."""
        wanted = frozenset(actions)
        past = self.seen(charger_id, wanted, since=since, predicate=predicate)
        if past:
            return past[0]
        future: asyncio.Future[Exchange] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(charger_id, wanted, since, predicate, future)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await future
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


def _safe(predicate: Callable[[Exchange], bool], exchange: Exchange) -> bool:
    try:
        return predicate(exchange)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def _wanted(waiter: _Waiter, exchange: Exchange) -> bool:
    return (
        exchange.action in waiter.actions
        and exchange.at >= waiter.since
        and _safe(waiter.predicate, exchange)
    )


# --------------------------------------------------------------------------------------------
# Reading a GetConfiguration answer


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    value: str | None
    readonly: bool


def configuration(answer: Mapping[str, Any]) -> dict[str, ConfigEntry]:
    """``{key: entry}`` from a GetConfiguration.conf payload, readonly flags kept."""
    keys: dict[str, ConfigEntry] = {}
    for entry in answer.get("configurationKey") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("key"), str):
            value = entry.get("value")
            keys[entry["key"]] = ConfigEntry(
                None if value is None else str(value), entry.get("readonly") is True
            )
    return keys


def _csl(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _int(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() else None


def _value(keys: Mapping[str, ConfigEntry], name: str) -> str | None:
    entry = keys.get(name)
    return None if entry is None else entry.value


def _bool(value: str | None) -> bool | None:
    text = (value or "").strip().lower()
    return True if text == "true" else False if text == "false" else None


def summarize_configuration(keys: Mapping[str, ConfigEntry]) -> JsonDict:
    """What the gateway cares about in a charger's configuration keys (None: not reported)."""
    features = _csl(_value(keys, "SupportedFeatureProfiles"))
    units_raw = _value(keys, "ChargingScheduleAllowedChargingRateUnit")
    units: list[str] = []
    for item in _csl(units_raw):
        unit = {"current": "A", "a": "A", "power": "W", "w": "W"}.get(item.lower())
        if unit is not None and unit not in units:
            units.append(unit)
    sampled = _value(keys, SAMPLED_DATA)
    return {
        "feature_profiles": features,
        "smart_charging": {
            "supported": "SmartCharging" in features if features else None,
            "max_stack_level": _int(_value(keys, "ChargeProfileMaxStackLevel")),
            "rate_units": units,
            "rate_units_raw": units_raw,
            "max_periods": _int(_value(keys, "ChargingScheduleMaxPeriods")),
            "max_profiles": _int(_value(keys, "MaxChargingProfilesInstalled")),
            "phase_switching": _bool(_value(keys, "ConnectorSwitch3to1PhaseSupported")),
        },
        "local_list": {
            "supported": "LocalAuthListManagement" in features if features else None,
            "enabled": _bool(_value(keys, "LocalAuthListEnabled")),
            "max_length": _int(_value(keys, "LocalAuthListMaxLength")),
            "send_max_length": _int(_value(keys, "SendLocalListMaxLength")),
        },
        "meter_values": {
            "sampled_data": None if sampled is None else _csl(sampled),
            "sampled_data_max_length": _int(_value(keys, MAX_LENGTH)),
            "sample_interval_s": _int(_value(keys, SAMPLE_INTERVAL)),
            "samples_current": None if sampled is None else CURRENT in _csl(sampled),
        },
        "connectors": _int(_value(keys, "NumberOfConnectors")),
        "phase_rotation": _value(keys, "ConnectorPhaseRotation"),
        "heartbeat_interval_s": _int(_value(keys, "HeartbeatInterval")),
    }


def _missing_keys(keys: Mapping[str, ConfigEntry], features: list[str]) -> list[str]:
    """Keys the charger's own feature profiles oblige it to report, but it did not."""
    required = ["NumberOfConnectors", SAMPLED_DATA, SAMPLE_INTERVAL, "HeartbeatInterval"]
    if "SmartCharging" in features:
        required += [
            "ChargeProfileMaxStackLevel",
            "ChargingScheduleAllowedChargingRateUnit",
            "ChargingScheduleMaxPeriods",
            "MaxChargingProfilesInstalled",
        ]
    if "LocalAuthListManagement" in features:
        required += ["LocalAuthListMaxLength", "SendLocalListMaxLength"]
    if not features:
        required.append("SupportedFeatureProfiles")
    return [k for k in required if k not in keys]


# --------------------------------------------------------------------------------------------
# Which hardware profile fits


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.casefold()) if w]


@dataclass(frozen=True, slots=True)
class ProfileMatch:
    """The ``hardware/chargers/`` model that fits a charger's vendor and model, if any.

    ``how`` is ``product`` (the vendor and a product's family words match), ``vendor`` (only
    the vendor matches: likely, check it) or None (nothing fits: the default model applies).
    """

    model_id: str | None
    how: Literal["product", "vendor"] | None
    candidates: tuple[str, ...] = ()


def match_profile(
    models: Mapping[str, ChargerModel], vendor: str | None, model: str | None
) -> ProfileMatch:
    """Match the BootNotification's vendor and model against each model's name and products.

    A product fits when its first word (the brand) is one of the vendor's or model's words;
    each further word of the product found there counts. The best-scoring model wins; a tie
    lists the candidates. The default (generic) model never "fits": it is what applies when
    nothing else does.
    """
    said = set(_words(f"{vendor or ''} {model or ''}"))
    if not said:
        return ProfileMatch(None, None)
    scores: dict[str, int] = {}
    for model_id, candidate in models.items():
        if model_id == DEFAULT_MODEL_ID:
            continue
        best = 0
        for product in (candidate.name, *candidate.products):
            words = _words(product)
            if not words or words[0] not in said:
                continue
            family = {w for w in words[1:] if not w.isdigit()}  # "2" says nothing alone
            best = max(best, 1 + sum(1 for w in family if w in said))
        if best:
            scores[model_id] = best
    if not scores:
        return ProfileMatch(None, None)
    top = max(scores.values())
    winners = tuple(sorted(m for m, s in scores.items() if s == top))
    how: Literal["product", "vendor"] = "product" if top > 1 else "vendor"
    return ProfileMatch(winners[0], how, winners)


def profile_differences(probed: ChargerModel, known: ChargerModel) -> list[str]:
    """Where the charger's keys disagree with a shipped model: worth a look before relying
    on the model (a firmware update, or a model that was guessed)."""
    out: list[str] = []
    a, b = probed.smart_charging, known.smart_charging
    checks: list[tuple[str, object, object]] = [
        ("smart_charging.supported", a.supported, b.supported),
        ("smart_charging.rate_units", sorted(a.rate_units), sorted(b.rate_units)),
        ("smart_charging.max_periods", a.max_periods, b.max_periods),
        ("smart_charging.max_profiles", a.max_profiles, b.max_profiles),
        ("local_list.supported", probed.local_list.supported, known.local_list.supported),
        ("local_list.max_length", probed.local_list.max_length, known.local_list.max_length),
    ]
    if not b.stack_level_zero:
        checks.append(("smart_charging.max_stack_level", a.max_stack_level, b.max_stack_level))
    for name, said, kept in checks:
        if said != kept and said is not None:
            out.append(f"{name}: the charger says {said!r}, {known.id} says {kept!r}")
    return out


def proposed_profile_id(vendor: str | None, model: str | None, charger_id: str) -> str:
    """A file name for a new model: ``<vendor>-<model>`` in lowercase words."""
    words = _words(f"{vendor or ''} {model or ''}") or _words(charger_id) or ["probed"]
    return "-".join(words)[:60].strip("-") or "probed"


# --------------------------------------------------------------------------------------------
# The report


@dataclass(slots=True)
class Step:
    """One checklist step's outcome."""

    name: str
    title: str
    status: StepStatus = "skip"
    detail: str = ""
    hint: str | None = None
    duration_s: float = 0.0
    data: JsonDict = field(default_factory=dict)

    def set(self, status: StepStatus, detail: str, hint: str | None = None, **data: Any) -> Step:
        self.status, self.detail, self.hint = status, detail, hint
        self.data.update(data)
        return self

    def as_dict(self) -> JsonDict:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "hint": self.hint,
            "duration_s": round(self.duration_s, 3),
            "data": self.data,
        }


STEPS: Final = (
    ("connected", "connected"),
    ("boot", "boot accepted"),
    ("heartbeat", "heartbeat"),
    ("status", "status per connector"),
    ("meter_values", "meter values per phase"),
    ("profile_accepted", "charging profile accepted"),
    ("profile_honoured", "charging profile honoured"),
    ("profile_removed", "test profile removed"),
    ("card", "test card accepted"),
)


class _NoAnswer(Exception):
    """A gateway call got no usable answer (CALLERROR, timeout, charger gone)."""


def _iso(posix: float) -> str:
    return datetime.fromtimestamp(posix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(now: float, then: float) -> str:
    return f"{max(0.0, now - then):.0f} s ago"


def _status_of(answer: Mapping[str, Any]) -> str:
    return str(answer.get("status", "no status"))


@dataclass(frozen=True, slots=True)
class _Options:
    card: CardId | None
    card_text: str | None
    tap: bool
    step_timeout: float
    tap_timeout: float


# --------------------------------------------------------------------------------------------
# The ops


class CommissionOps:
    """Registers ``chargers.probe``, ``chargers.configure`` and ``commission.run``.

    ``observer`` must be among ``gateway.observers`` before chargers connect (the daemon
    appends ``ops.observer``). ``models`` defaults to ``hardware/chargers/``.
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        models: Mapping[str, ChargerModel] | None = None,
        observer: CommissionObserver | None = None,
        call_timeout: float = CALL_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._gw = gateway
        self._models = dict(models) if models is not None else None
        self._clock = clock
        self._timeout = call_timeout
        self.observer = observer or CommissionObserver(clock=clock)
        self._running: set[str] = set()

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
        answer = await self._ask(charger_id, "GetConfiguration", {})
        keys = configuration(answer)
        summary = summarize_configuration(keys)
        row = await self._row(charger_id)
        vendor, model = (row.vendor, row.model) if row is not None else (None, None)
        models = self._load_models()
        match = match_profile(models, vendor, model)
        configured = self._gw.config.charger(charger_id)
        base = models[match.model_id] if match.model_id else models[DEFAULT_MODEL_ID]
        profile_id = wanted_id or proposed_profile_id(vendor, model, charger_id)
        label = " ".join(x for x in (vendor, model) if x) or charger_id
        proposed = model_from_configuration(
            answer, base=base, model_id=profile_id, name=label, products=[label]
        )
        firmware = row.firmware if row is not None and row.firmware else "unknown"
        proposed = proposed.model_copy(
            update={
                "notes": [
                    *proposed.notes,
                    f"probed from {charger_id} ({label}, firmware {firmware}) on "
                    f"{_iso(self._clock())[:10]}",
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
            **summary,
            "missing_keys": _missing_keys(keys, summary["feature_profiles"]),
            "profile": {
                "fits": match.model_id,
                "match": match.how,
                "candidates": list(match.candidates),
                "configured": in_use,
                "differences": differences,
            },
            "keys": {
                k: {
                    "value": MASK if k.casefold() in SECRET_KEYS else e.value,
                    "readonly": e.readonly,
                }
                for k, e in sorted(keys.items())
            },
        }
        store = self.store()
        await CapabilityStore(store.db, clock=self._clock).set_probe(charger_id, record)
        fits = match.model_id or f"none (the default {DEFAULT_MODEL_ID} applies)"
        await self._event(
            "probe",
            f"{charger_id} probed: {len(keys)} configuration keys, profile {fits}",
            charger_id,
            {"profile": record["profile"], "missing_keys": record["missing_keys"]},
        )
        log.info("%s probed: %d keys, profile %s", charger_id, len(keys), fits)
        return {
            "charger": charger_id,
            **record,
            "proposed_profile": {
                "id": profile_id,
                "base": base.id,
                "toml": model_to_toml(proposed),
            },
        }

    # ------------------------------------------------------------------ chargers.configure

    async def configure(self, args: dict[str, Any]) -> JsonDict:
        interval = get_arg(args, "interval", int, DEFAULT_INTERVAL_S)
        if not 1 <= interval <= 3600:
            raise ControlError(ErrorCode.BAD_ARGS, "interval must be 1..3600 seconds")
        charger_id = self._connected_charger(args)
        answer = await self._ask(
            charger_id, "GetConfiguration", {"key": [SAMPLED_DATA, SAMPLE_INTERVAL, MAX_LENGTH]}
        )
        keys = configuration(answer)
        measurands = await self._set_measurands(charger_id, keys)
        sampling = await self._set_interval(charger_id, keys, interval)
        results = [measurands, sampling]
        ok = all(r["status"] in ("Accepted", "RebootRequired", "Unchanged") for r in results)
        reboot = [r["key"] for r in results if r["status"] == "RebootRequired"]
        out: JsonDict = {
            "charger": charger_id,
            "ok": ok,
            "keys": results,
            "measurands": measurands["value_list"],
            "samples_current": CURRENT in measurands["value_list"],
            "interval_s": _int(sampling["value"]),
            "reboot_required": reboot,
        }
        what = "; ".join(f"{r['key']}: {r['status']}" for r in results)
        await self._event("sampling", f"{charger_id} configured: {what}", charger_id, out)
        log.info("%s: meter sampling configured (%s)", charger_id, what)
        return out

    async def _change(self, charger_id: str, key: str, value: str) -> str:
        answer = await self._ask(charger_id, "ChangeConfiguration", {"key": key, "value": value})
        return _status_of(answer)

    async def _set_measurands(self, charger_id: str, keys: Mapping[str, ConfigEntry]) -> JsonDict:
        entry = keys.get(SAMPLED_DATA)
        result: JsonDict = {"key": SAMPLED_DATA, "previous": None, "attempts": []}
        if entry is None:
            return {
                **result,
                "status": "NotSupported",
                "value": None,
                "value_list": [],
                "detail": "the charger does not report this key: it cannot be set",
            }
        existing = _csl(entry.value)
        result["previous"] = entry.value
        missing = [m for m in CONFIGURE_MEASURANDS if m not in existing]
        if not missing:
            return {
                **result,
                "status": "Unchanged",
                "value": entry.value,
                "value_list": existing,
                "detail": "already samples " + ", ".join(CONFIGURE_MEASURANDS),
            }
        if entry.readonly:
            return {
                **result,
                "status": "Rejected",
                "value": entry.value,
                "value_list": existing,
                "detail": f"read-only on this charger; it does not sample {', '.join(missing)}",
            }
        room = _int(_value(keys, MAX_LENGTH))
        left_out: list[str] = []
        if room is not None and len(existing) + len(missing) > room:
            keep = max(0, room - len(existing))
            left_out = missing[keep:]
            missing = missing[:keep]
            if not missing:
                return {
                    **result,
                    "status": "Rejected",
                    "value": entry.value,
                    "value_list": existing,
                    "detail": f"the list is full ({MAX_LENGTH} = {room}): remove a measurand "
                    f"to make room for {left_out[0]}",
                }
        # One measurand the charger cannot sample makes it refuse the whole list: drop the
        # least needed one at a time until it takes one (Current.Import is tried last alone).
        status = "Rejected"
        for count in range(len(missing), 0, -1):
            adding = missing[:count]
            wanted = [*existing, *adding]
            status = await self._change(charger_id, SAMPLED_DATA, ",".join(wanted))
            result["attempts"].append({"value": ",".join(wanted), "status": status})
            if status in _TAKEN:
                left_out = [*missing[count:], *left_out]
                detail = f"now samples {', '.join(wanted)}"
                if left_out:
                    detail += f"; not taken: {', '.join(left_out)}"
                if status == "RebootRequired":
                    detail += "; takes effect after the charger restarts"
                return {
                    **result,
                    "status": status,
                    "value": ",".join(wanted),
                    "value_list": wanted,
                    "detail": detail,
                    "left_out": left_out,
                }
            if status == "NotSupported":
                break
        return {
            **result,
            "status": status,
            "value": entry.value,
            "value_list": existing,
            "detail": f"the charger answered {status} to every list with "
            f"{', '.join(missing[:1])}; it keeps sampling {entry.value or 'nothing'}",
        }

    async def _set_interval(
        self, charger_id: str, keys: Mapping[str, ConfigEntry], interval: int
    ) -> JsonDict:
        entry = keys.get(SAMPLE_INTERVAL)
        result: JsonDict = {"key": SAMPLE_INTERVAL, "previous": None, "wanted": str(interval)}
        if entry is None:
            return {
                **result,
                "status": "NotSupported",
                "value": None,
                "detail": "the charger does not report this key: it cannot be set",
            }
        result["previous"] = entry.value
        if _int(entry.value) == interval:
            return {
                **result,
                "status": "Unchanged",
                "value": entry.value,
                "detail": f"already {interval} s",
            }
        if entry.readonly:
            return {
                **result,
                "status": "Rejected",
                "value": entry.value,
                "detail": f"read-only on this charger; it stays at {entry.value} s",
            }
        status = await self._change(charger_id, SAMPLE_INTERVAL, str(interval))
        if status in _TAKEN:
            detail = f"{entry.value} s -> {interval} s"
            if status == "RebootRequired":
                detail += "; takes effect after the charger restarts"
            return {**result, "status": status, "value": str(interval), "detail": detail}
        return {
            **result,
            "status": status,
            "value": entry.value,
            "detail": f"the charger answered {status}; it stays at {entry.value} s",
        }

    # ------------------------------------------------------------------ commission.run

    async def commission(self, args: dict[str, Any]) -> JsonDict:
        charger_id = get_arg(args, "charger", str).strip()
        options = self._options(args)
        row = await self._row(charger_id)
        if self._gw.config.charger(charger_id) is None and row is None:
            raise self._unknown(charger_id)
        if self.observer not in self._gw.observers:
            raise ControlError(
                ErrorCode.UNAVAILABLE,
                "this daemon does not watch the chargers for commissioning (its observer is "
                "not installed); update and restart edgegw",
            )
        if charger_id in self._running:
            raise ControlError(
                ErrorCode.CONFLICT, f"a commissioning run for {charger_id} is already going on"
            )
        self._running.add(charger_id)
        try:
            run = _Run(self, charger_id, row, options)
            report = await run.execute()
        finally:
            self._running.discard(charger_id)
        await self._save(charger_id, report)
        return report

    def _options(self, args: dict[str, Any]) -> _Options:
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
        return _Options(
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
        try:
            store = self.store()
            await CapabilityStore(store.db, clock=self._clock).set_commissioning(
                charger_id, summary
            )
        except ControlError:
            return
        await self._event(
            "commissioning", f"{charger_id} commissioning {verdict}", charger_id, report
        )
        log.info("%s commissioning %s", charger_id, verdict)

    # ------------------------------------------------------------------ helpers

    def _load_models(self) -> dict[str, ChargerModel]:
        if self._models is None:
            try:
                self._models = load_models(default_profiles_dir().parent / "chargers")
            except ChargerModelError as exc:
                raise ControlError(
                    ErrorCode.UNAVAILABLE, f"the charger models cannot be read: {exc}"
                ) from None
        return self._models

    def model_of(self, charger_id: str) -> ChargerModel:
        models = self._load_models()
        try:
            return model_for(models, self._gw.config.charger(charger_id))
        except ChargerModelError:
            return models[DEFAULT_MODEL_ID]

    def store(self) -> Store:
        store = self._gw.store
        if store is None:
            raise ControlError(ErrorCode.UNAVAILABLE, "the daemon is starting; try again")
        return store

    async def _row(self, charger_id: str) -> ChargerRow | None:
        rows = await self.store().chargers()
        return next((r for r in rows if r.id == charger_id), None)

    def _unknown(self, charger_id: str) -> ControlError:
        known = ", ".join(c.id for c in self._gw.config.chargers) or "none"
        return ControlError(
            ErrorCode.NOT_FOUND,
            f"no charger {charger_id!r}: it is not in the configuration and never connected "
            f"(configured: {known})",
        )

    def _connected_charger(self, args: dict[str, Any]) -> str:
        charger_id = get_arg(args, "charger", str).strip()
        if charger_id in self._gw.sessions:
            return charger_id
        if self._gw.config.charger(charger_id) is None:
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
        """A gateway call; raises :class:`_NoAnswer` with the reason when there is no answer."""
        try:
            return await self._gw.call(charger_id, action, payload, timeout or self._timeout)
        except CallFailed as exc:
            raise _NoAnswer(str(exc)) from None
        except LookupError:  # ChargerNotConnected, or it left between the check and the call
            raise _NoAnswer(f"{charger_id} is not connected") from None

    async def _ask(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        try:
            return await self.call(charger_id, action, payload)
        except _NoAnswer as exc:
            raise ControlError(
                ErrorCode.UNAVAILABLE, f"{charger_id} did not answer {action}: {exc}"
            ) from None

    async def _event(self, kind: str, message: str, charger_id: str, data: JsonDict) -> None:
        try:
            await self.store().event(kind, message, charger_id=charger_id, data=data)
        except Exception:  # the work was done; a full disk must not hide its result
            log.exception("%s: could not record the %s event", charger_id, kind)

    @property
    def gateway(self) -> Gateway:
        return self._gw

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock


# --------------------------------------------------------------------------------------------
# One commissioning run


class _Run:
    """The checklist for one charger: each step method fills its :class:`Step`."""

    def __init__(
        self, ops: CommissionOps, charger_id: str, row: ChargerRow | None, options: _Options
    ) -> None:
        self.ops = ops
        self.gw = ops.gateway
        self.obs = ops.observer
        self.clock = ops.clock
        self.charger_id = charger_id
        self.row = row
        self.opt = options
        self.config: ChargerConfig | None = self.gw.config.charger(charger_id)
        self.model = ops.model_of(charger_id)
        self.keys: dict[str, ConfigEntry] = {}
        self.connectors: list[int] = [1]
        self.started = self.clock()
        self.steps = {name: Step(name, title) for name, title in STEPS}

    async def execute(self) -> JsonDict:
        order: list[tuple[str, Callable[[Step], Awaitable[None]]]] = [
            ("connected", self._connected),
            ("boot", self._boot),
            ("heartbeat", self._heartbeat),
            ("status", self._status),
            ("meter_values", self._meter_values),
            ("profile_accepted", self._profile),
            ("card", self._card),
        ]
        gone: str | None = None
        for name, run in order:
            step = self.steps[name]
            if gone is not None:
                step.set("skip", gone)
                if name == "profile_accepted":
                    self.steps["profile_honoured"].set("skip", gone)
                    self.steps["profile_removed"].set("skip", gone)
                continue
            began = time.monotonic()
            try:
                await run(step)
            except (_NoAnswer, ChargerGone) as exc:
                step.set("fail", f"the charger stopped answering: {exc}")
            except Exception:
                log.exception("%s: commissioning step %s failed", self.charger_id, name)
                step.set("fail", "the gateway failed on this step; see its log")
            if not step.duration_s:  # a step may time its own parts
                step.duration_s = time.monotonic() - began
            if self.charger_id not in self.gw.sessions:
                gone = (
                    "not checked: the charger is not connected"
                    if name == "connected"
                    else "not checked: the charger disconnected during commissioning"
                )
        for step in self.steps.values():
            if not step.detail:  # a later part of a step that failed early
                step.set("skip", "not checked: the step before it failed")
        steps = [self.steps[name].as_dict() for name, _title in STEPS]
        counts = {s: sum(1 for x in steps if x["status"] == s) for s in ("pass", "fail", "skip")}
        finished = self.clock()
        row = self.row
        return {
            "charger": self.charger_id,
            "started_at": self.started,
            "finished_at": finished,
            "duration_s": round(finished - self.started, 3),
            "passed": counts["fail"] == 0,
            "counts": counts,
            "charger_info": {
                "vendor": row.vendor if row else None,
                "model": row.model if row else None,
                "serial": row.serial if row else None,
                "firmware": row.firmware if row else None,
                "address": row.last_address if row else None,
                "hardware_profile": self.model.id,
                "connectors": self.connectors,
            },
            "load_capping": self.gw.controller is not None,
            "card": self.opt.card.canonical if self.opt.card else None,
            "steps": steps,
        }

    # ------------------------------------------------------------------ helpers

    async def call(self, action: str, payload: JsonDict) -> JsonDict:
        return await self.ops.call(self.charger_id, action, payload)

    def _phases(self) -> int:
        if self.config is not None:
            return len(self.config.site_phases())
        return self.model.phases

    async def _trigger(self, message: str, connector: int | None = None) -> str:
        payload: JsonDict = {"requestedMessage": message}
        if connector is not None:
            payload["connectorId"] = connector
        return _status_of(await self.call("TriggerMessage", payload))

    # ------------------------------------------------------------------ steps

    async def _connected(self, step: Step) -> None:
        cid = self.charger_id
        if cid not in self.gw.sessions:
            seen = (
                f"last seen {_iso(self.row.last_seen)}"
                if self.row is not None
                else "it never connected"
            )
            step.set(
                "fail",
                f"{cid} is not connected to the gateway ({seen})",
                f"check the charger's OCPP server URL (…/{cid} on this gateway's port "
                f"{self.gw.config.server.port}), its network and its password; "
                f"`edgegw chargers show {cid}` shows refused attempts",
            )
            return
        since = self.obs.connected_since(cid)
        address = self.row.last_address if self.row is not None else None
        try:
            answer = await self.call("GetConfiguration", {"key": list(_RUN_KEYS)})
        except _NoAnswer as exc:
            step.set(
                "fail",
                f"connected from {address or 'an unknown address'}, but it does not answer the "
                f"gateway's calls: {exc}",
                "restart the charger; if it persists, its OCPP link is unhealthy",
            )
            return
        self.keys = configuration(answer)
        count = _int(_value(self.keys, "NumberOfConnectors"))
        if count is None:
            stored = await self.ops.store().connector_status(cid)
            count = max([c for c in stored if c > 0], default=1)
        self.connectors = list(range(1, count + 1))
        how_long = f", for {max(0.0, self.clock() - since):.0f} s" if since is not None else ""
        step.set(
            "pass",
            f"connected from {address or 'an unknown address'}{how_long}; answers the gateway's "
            f"calls; {count} connector(s)",
            address=address,
            connected_since=since,
            connectors=count,
        )

    async def _boot(self, step: Step) -> None:
        boots = self.obs.seen(self.charger_id, ["BootNotification"])
        if not boots and (self.row is None or self.row.last_boot is None):
            status = await self._trigger("BootNotification")
            if status != "Accepted":
                step.set(
                    "fail",
                    f"no BootNotification recorded, and TriggerMessage BootNotification was "
                    f"answered {status}",
                    "restart the charger so that it boots against the gateway",
                )
                return
            try:
                boots = [
                    await self.obs.wait(
                        self.charger_id,
                        ["BootNotification"],
                        since=self.started,
                        timeout=self.opt.step_timeout,
                    )
                ]
            except TimeoutError:
                step.set(
                    "fail",
                    f"no BootNotification within {self.opt.step_timeout:.0f} s of asking for one",
                    "restart the charger so that it boots against the gateway",
                )
                return
        if boots:
            last = boots[-1]
            status = _status_of(last.response)
            who = " ".join(
                str(last.request.get(k))
                for k in ("chargePointVendor", "chargePointModel", "firmwareVersion")
                if last.request.get(k)
            )
            if status == "Accepted":
                step.set(
                    "pass",
                    f"BootNotification Accepted at {_iso(last.at)} ({who})",
                    boot_status=status,
                    at=last.at,
                )
            else:
                step.set(
                    "fail",
                    f"the last BootNotification ({who}) was answered {status}",
                    "the cloud does not know this charger yet: register its identity "
                    f"{self.charger_id!r} in the cloud CSMS, then restart the charger",
                    boot_status=status,
                    at=last.at,
                )
            return
        assert self.row is not None and self.row.last_boot is not None
        step.set(
            "pass",
            f"last BootNotification at {_iso(self.row.last_boot)}, before this run of the "
            "gateway; the charger has been exchanging messages since",
            at=self.row.last_boot,
        )

    async def _heartbeat(self, step: Step) -> None:
        interval = _int(_value(self.keys, "HeartbeatInterval")) or (
            self.gw.config.server.heartbeat_interval
        )
        now = self.clock()
        recent = self.obs.seen(self.charger_id, ["Heartbeat"], since=now - 1.5 * interval)
        if recent:
            step.set(
                "pass",
                f"last Heartbeat {_ago(now, recent[-1].at)} (interval {interval} s)",
                interval_s=interval,
            )
            return
        asked = self.clock()
        status = await self._trigger("Heartbeat")
        if status != "Accepted":
            step.set(
                "fail",
                f"no Heartbeat in the last {1.5 * interval:.0f} s, and TriggerMessage Heartbeat "
                f"was answered {status}",
                "check the charger's HeartbeatInterval and that it keeps its OCPP link alive",
                interval_s=interval,
            )
            return
        try:
            beat = await self.obs.wait(
                self.charger_id, ["Heartbeat"], since=asked, timeout=self.opt.step_timeout
            )
        except TimeoutError:
            step.set(
                "fail",
                f"no Heartbeat within {self.opt.step_timeout:.0f} s of TriggerMessage Heartbeat",
                "check the charger's HeartbeatInterval and that it keeps its OCPP link alive",
                interval_s=interval,
            )
            return
        since = self.obs.connected_since(self.charger_id)
        window = 1.5 * interval if since is None else min(1.5 * interval, now - since)
        step.set(
            "pass",
            f"sent a Heartbeat {beat.at - asked:.2f} s after being asked (none of its own in "
            f"the last {window:.0f} s; its interval is {interval} s)",
            interval_s=interval,
        )

    async def _status(self, step: Step) -> None:
        since = self.obs.connected_since(self.charger_id) or self.started

        def latest() -> dict[int, Exchange]:
            out: dict[int, Exchange] = {}
            for e in self.obs.seen(self.charger_id, ["StatusNotification"], since=since):
                connector = e.request.get("connectorId")
                if isinstance(connector, int):
                    out[connector] = e
            return out

        seen = latest()
        triggered = ""
        if any(c not in seen for c in self.connectors):
            asked = self.clock()
            status = await self._trigger("StatusNotification")
            triggered = f"TriggerMessage StatusNotification: {status}"
            if status == "Accepted":
                for connector in self.connectors:
                    if connector in seen:
                        continue
                    try:
                        await self.obs.wait(
                            self.charger_id,
                            ["StatusNotification"],
                            since=asked,
                            timeout=self.opt.step_timeout,
                            predicate=_on_connector(connector),
                        )
                    except TimeoutError:
                        break
                seen = latest()
        stored = await self.ops.store().connector_status(self.charger_id)
        parts: list[str] = []
        bad: list[str] = []
        missing: list[int] = []
        statuses: JsonDict = {}
        for connector in self.connectors:
            exchange = seen.get(connector)
            if exchange is None:
                missing.append(connector)
                if connector in stored:
                    status, error = stored[connector]
                    parts.append(f"{connector}: {status} (recorded earlier)")
                    statuses[str(connector)] = {"status": status, "error_code": error}
                continue
            status = str(exchange.request.get("status"))
            error = str(exchange.request.get("errorCode", "NoError"))
            statuses[str(connector)] = {"status": status, "error_code": error}
            parts.append(f"{connector}: {status}" + ("" if error == "NoError" else f" ({error})"))
            if status in ("Faulted", "Unavailable") or error != "NoError":
                bad.append(f"connector {connector} is {status}, error {error}")
        if missing:
            why = f" ({triggered})" if triggered else ""
            step.set(
                "fail",
                f"no StatusNotification from connector(s) {', '.join(map(str, missing))} on this "
                f"connection{why}; " + ("; ".join(parts) or "nothing recorded"),
                "restart the charger; a charger must report each connector's status when it "
                "connects",
                connectors=statuses,
            )
            return
        if bad:
            step.set(
                "fail",
                "; ".join(bad),
                "clear the fault on the charger (its display or app); an Unavailable connector "
                "was disabled (ChangeAvailability Inoperative): enable it from the charger or "
                "the cloud",
                connectors=statuses,
            )
            return
        step.set("pass", "; ".join(parts), connectors=statuses)

    async def _meter_values(self, step: Step) -> None:
        phases = self._phases()
        wanted = ["L1", "L2", "L3"][:phases]
        found: dict[str, JsonDict] = {}
        problems: list[str] = []
        details: list[str] = []
        for connector in self.connectors:
            asked = self.clock()
            status = await self._trigger("MeterValues", connector)
            if status != "Accepted":
                problems.append(f"connector {connector}: TriggerMessage MeterValues {status}")
                asked = self.started  # a periodic sample will do
            try:
                exchange = await self.obs.wait(
                    self.charger_id,
                    ["MeterValues"],
                    since=asked,
                    timeout=self.opt.step_timeout,
                    predicate=_on_connector(connector),
                )
            except TimeoutError:
                problems.append(
                    f"connector {connector}: no MeterValues within {self.opt.step_timeout:.0f} s"
                )
                continue
            seen = _sampled(exchange.request)
            found[str(connector)] = seen
            currents = seen["current_import"]
            if not currents:
                problems.append(
                    f"connector {connector}: no {CURRENT} (samples "
                    f"{', '.join(seen['measurands']) or 'nothing'})"
                )
                continue
            missing = [p for p in wanted if p not in currents]
            if missing:
                problems.append(
                    f"connector {connector}: {CURRENT} without phase(s) {', '.join(missing)} "
                    f"(reported: {', '.join(currents) or 'a total only'})"
                )
                continue
            amps = ", ".join(f"{p} {currents[p]} A" for p in wanted)
            details.append(f"connector {connector}: {CURRENT} {amps}")
        if problems:
            no_current = any(CURRENT in p and "without" not in p for p in problems)
            hint = (
                f"run `edgegw chargers configure {self.charger_id}` to ask for {CURRENT}"
                if no_current
                else "check the charger's metering settings (per-phase measurement); without "
                "per-phase currents load capping counts its cars on every phase at their limit"
            )
            step.set("fail", "; ".join(problems + details), hint, connectors=found)
            return
        step.set(
            "pass",
            "; ".join(details) + f" ({phases} phase(s) expected)",
            connectors=found,
        )

    async def _profile(self, step: Step) -> None:
        honoured = self.steps["profile_honoured"]
        removed = self.steps["profile_removed"]
        sc = self.model.smart_charging
        features = _csl(_value(self.keys, "SupportedFeatureProfiles"))
        if not sc.supported or (features and "SmartCharging" not in features):
            why = (
                f"its model {self.model.id} has no smart charging"
                if not sc.supported
                else f"it does not list SmartCharging in SupportedFeatureProfiles "
                f"({', '.join(features)})"
            )
            for s in (step, honoured, removed):
                s.set("skip", f"not checked: {why}; the gateway cannot cap this charger")
            return
        if self.gw.controller is not None:
            await self._controller_cap(step, honoured)
            removed.set("skip", "no test profile was installed: the load controller's cap stays")
            return
        await self._test_profile(step, honoured, removed)

    async def _test_profile(self, step: Step, honoured: Step, removed: Step) -> None:
        sc = self.model.smart_charging
        purpose = next(
            (p for p in (Purpose.CHARGE_POINT_MAX, Purpose.TX_DEFAULT) if p in sc.purposes), None
        )
        if purpose is None:
            why = (
                f"its model {self.model.id} takes TxProfiles only, which need a running "
                "transaction; start a session and watch its current"
            )
            for s in (step, honoured, removed):
                s.set("skip", f"not checked: {why}")
            return
        min_a = max(self.model.min_current_a, self.config.min_current_a if self.config else 6.0)
        limit = min_a
        phases = self._phases()
        payload = build_set_charging_profile(
            self.model, ProfileKey(0, purpose), limit, phases=phases, now=self.clock()
        )
        profile_id = sc.profile_id_base + COMMISSION_PROFILE_SLOT
        payload["csChargingProfiles"]["chargingProfileId"] = profile_id
        stack = payload["csChargingProfiles"]["stackLevel"]
        what = f"{purpose.value} of {limit:.1f} A at stack level {stack} (id {profile_id})"
        began = time.monotonic()
        try:
            status = _status_of(await self.call("SetChargingProfile", payload))
        except _NoAnswer as exc:
            step.set("fail", f"SetChargingProfile {what}: no answer ({exc})")
            await self._clear(removed, profile_id)  # it may have been installed all the same
            return
        finally:
            step.duration_s = time.monotonic() - began
        if status != "Accepted":
            notes = "; ".join(self.model.notes)
            step.set(
                "fail",
                f"SetChargingProfile {what}: {status}",
                "check the charger's smart-charging settings"
                + (f" ({notes})" if notes else "")
                + f"; run `edgegw chargers probe {self.charger_id}` to see if another hardware "
                "profile fits",
                purpose=purpose.value,
                limit_a=limit,
                stack_level=stack,
                answer=status,
            )
            honoured.set("skip", "not checked: the test profile was not accepted")
            removed.set("skip", "nothing to remove")
            return
        step.set(
            "pass",
            f"SetChargingProfile {what}: Accepted",
            purpose=purpose.value,
            limit_a=limit,
            stack_level=stack,
        )
        began = time.monotonic()
        try:
            await self._composite(honoured, dict.fromkeys(self.connectors[:1], limit), "test limit")
        except (_NoAnswer, ChargerGone) as exc:
            honoured.set("fail", f"the charger stopped answering: {exc}")
        finally:
            honoured.duration_s = time.monotonic() - began
            began = time.monotonic()
            await self._clear(removed, profile_id)
            removed.duration_s = time.monotonic() - began

    async def _clear(self, step: Step, profile_id: int) -> None:
        try:
            status = _status_of(await self.call("ClearChargingProfile", {"id": profile_id}))
        except _NoAnswer as exc:
            status = f"no answer ({exc})"
        if status == "Accepted":
            step.set("pass", f"ClearChargingProfile id {profile_id}: Accepted")
            return
        step.set(
            "fail",
            f"ClearChargingProfile id {profile_id}: {status}; the charger may keep the low test "
            "limit",
            f"check the charger's current limit; restart the charger or clear profile "
            f"{profile_id} from the cloud",
        )

    async def _composite(self, step: Step, limits: Mapping[int, float], label: str) -> None:
        """Does the composite schedule of each connector in ``limits`` stay at or under it?"""
        unit = self.model.smart_charging.rate_unit
        phases = self._phases()
        over: list[str] = []
        fine: list[str] = []
        seen: JsonDict = {}
        for connector, limit in sorted(limits.items()):
            answer = await self.call(
                "GetCompositeSchedule",
                {
                    "connectorId": connector,
                    "duration": _COMPOSITE_DURATION_S,
                    "chargingRateUnit": unit.value,
                },
            )
            if _status_of(answer) != "Accepted":
                step.set(
                    "skip",
                    f"the charger answered GetCompositeSchedule {_status_of(answer)}, so what is "
                    "in force cannot be read",
                    f"check with a car: its current must stay at or below {limit:.1f} A",
                )
                return
            now_a = _composite_now_a(answer, phases)
            seen[str(connector)] = now_a
            if now_a is None:
                over.append(f"connector {connector}: the composite schedule has no limit now")
            elif now_a > limit + _TOLERANCE_A:
                over.append(
                    f"connector {connector}: {now_a:.1f} A now, above the {label} of {limit:.1f} A"
                )
            else:
                fine.append(f"connector {connector}: {now_a:.1f} A now ({label} {limit:.1f} A)")
        if over:
            step.set(
                "fail",
                "; ".join(over + fine) + ": the charger accepted the profile but does not apply it",
                "this charger cannot be load-capped as it is: check its firmware and its "
                "smart-charging settings (some need load management switched on)",
                composite_a=seen,
            )
            return
        step.set("pass", "GetCompositeSchedule: " + "; ".join(fine), composite_a=seen)

    async def _controller_cap(self, step: Step, honoured: Step) -> None:
        controller = self.gw.controller
        assert controller is not None
        cid = self.charger_id

        def mine() -> Any:
            return next((c for c in controller.state().chargers if c.id == cid), None)

        def settled() -> bool:
            state = mine()
            return state is not None and state.connected and state.pending_profiles == 0

        with contextlib.suppress(TimeoutError):  # what is still pending is reported below
            await controller.wait_until(settled, self.opt.step_timeout)
        state = mine()
        note = "the site's load controller keeps its own cap on this charger; checked that cap"
        if state is None or state.cap_purpose is None:
            for s in (step, honoured):
                s.set("skip", f"not checked: the load controller does not cap {cid}")
            return
        refused = [f for f in state.flags if f in ("profile_rejected", "profile_failed")]
        if refused or state.pending_profiles:
            why = state.last_error or ", ".join(refused) or "not acknowledged yet"
            step.set(
                "fail",
                f"{note}: its {state.cap_purpose} is not in force ({why}; "
                f"{state.pending_profiles} profile(s) pending)",
                f"check the charger's smart-charging settings; `edgegw chargers probe {cid}` "
                "shows whether its hardware profile fits",
                purpose=state.cap_purpose,
                flags=list(state.flags),
            )
            honoured.set("skip", "not checked: the controller's profile is not acknowledged")
            return
        step.set(
            "pass",
            f"{note}: its {state.cap_purpose} was acknowledged",
            purpose=state.cap_purpose,
        )
        min_a = max(self.model.min_current_a, self.config.min_current_a if self.config else 6.0)
        fallback = self.config.fallback_current_a if self.config else 0.0
        safe = iec_limit(self.model, fallback, min_a)
        limits = dict.fromkeys(self.connectors, safe)
        for session in state.sessions:
            limits[session.connector] = session.offered_a
        await self._composite(honoured, limits, "controller's limit")

    async def _card(self, step: Step) -> None:
        if self.opt.card is None and not self.opt.tap:
            step.set("skip", "no test card given (--card UID, --tap)")
            return
        parts: list[str] = []
        failed = False
        hint: str | None = None
        if self.opt.card is not None:
            decided, text, hint = self._decide(self.opt.card)
            parts.append(text)
            failed = decided is False
        if self.opt.tap:
            ok, text, tap_hint = await self._tap()
            parts.append(text)
            failed = failed or not ok
            hint = hint or tap_hint
        if failed:
            step.set("fail", "; ".join(parts), hint)
        else:
            step.set("pass", "; ".join(parts))

    def _decide(self, card: CardId) -> tuple[bool | None, str, str | None]:
        """The gateway's own decision for ``card`` at this charger (None: not decided)."""
        authorizer = self.gw.authorizer
        if authorizer is None:
            return None, "the card authority is not running", None
        fmt = authorizer.charger_format(self.charger_id)
        configured = self.config.idtag_format if self.config else None
        if fmt is IdTagFormat.AUTO:
            # Deciding would teach the authorizer this charger's format from typed text.
            return (
                None,
                f"card {card.canonical}: not decided locally, because how {self.charger_id} "
                "writes card UIDs is not known yet (tap a card at it, or set its idtag_format)",
                None,
            )
        try:
            presented = render(card, fmt)
        except ValueError as exc:
            return False, f"card {card.canonical}: {exc}", None
        free = self.config.free_charging_tag if self.config else None
        decision = authorizer.decide(self.charger_id, presented, fmt=fmt, free_tag=free)
        source = "configured" if configured and configured != "auto" else "detected"
        text = (
            f"card {card.canonical} (as {presented!r}, {fmt.value} {source}): "
            f"{decision.status.value} by the gateway — {decision.reason}"
        )
        if decision.accepted:
            return True, text, None
        return False, text, f"add or unblock it: `edgegw cards add {card.canonical}`"

    async def _tap(self) -> tuple[bool, str, str | None]:
        card = self.opt.card

        def matches(e: Exchange) -> bool:
            tag = e.request.get("idTag")
            if not isinstance(tag, str):
                return False
            if card is None:
                return True
            return tag.casefold() == card.canonical.casefold() or card in (
                interpretations(tag).values()
            )

        which = f"card {card.canonical}" if card else "a card"
        try:
            tapped = await self.obs.wait(
                self.charger_id,
                ["Authorize", "StartTransaction"],
                since=self.started,
                timeout=self.opt.tap_timeout,
                predicate=matches,
            )
        except TimeoutError:
            return (
                False,
                f"nobody tapped {which} at {self.charger_id} within {self.opt.tap_timeout:.0f} s",
                "tap the card on the charger's reader while the checklist waits",
            )
        info = tapped.response.get("idTagInfo")
        status = str(info.get("status")) if isinstance(info, Mapping) else "no idTagInfo"
        text = f"tapped as {tapped.request.get('idTag')!r}: {tapped.action} {status}"
        if status == "Accepted":
            return True, text, None
        return False, text, "check the card in `edgegw cards show` and the cloud's card list"


def _on_connector(connector: int) -> Callable[[Exchange], bool]:
    def matches(exchange: Exchange) -> bool:
        return bool(exchange.request.get("connectorId") == connector)

    return matches


def _sampled(request: Mapping[str, Any]) -> JsonDict:
    """Measurands and per-phase ``Current.Import`` (A) in a MeterValues.req."""
    measurands: list[str] = []
    currents: dict[str, float] = {}
    for value in request.get("meterValue") or ():
        if not isinstance(value, Mapping):
            continue
        for sample in value.get("sampledValue") or ():
            if not isinstance(sample, Mapping):
                continue
            measurand = str(sample.get("measurand") or "Energy.Active.Import.Register")
            if measurand not in measurands:
                measurands.append(measurand)
            if measurand != CURRENT:
                continue
            phase = str(sample.get("phase") or "total")
            phase = phase.split("-", maxsplit=1)[0]  # "L1-N" is L1 too
            try:
                amps = float(sample.get("value", "nan"))
            except (TypeError, ValueError):
                continue
            if sample.get("unit") == "mA":
                amps /= 1000
            currents[phase] = round(amps, 2)
    return {"measurands": measurands, "current_import": currents}


def _composite_now_a(answer: Mapping[str, Any], phases: int) -> float | None:
    """The limit (A per phase) the composite schedule puts in force at its start."""
    schedule = answer.get("chargingSchedule")
    if not isinstance(schedule, Mapping):
        return None
    periods = [p for p in schedule.get("chargingSchedulePeriod") or () if isinstance(p, Mapping)]
    current: Mapping[str, Any] | None = None
    for period in sorted(periods, key=lambda p: float(p.get("startPeriod", 0))):
        if float(period.get("startPeriod", 0)) > 0:
            break
        current = period
    if current is None or not isinstance(current.get("limit"), int | float):
        return None
    limit = float(current["limit"])
    if schedule.get("chargingRateUnit") == RateUnit.W.value:
        count = current.get("numberPhases")
        return limit / (NOMINAL_VOLTAGE * (count if isinstance(count, int) and count else phases))
    return limit
