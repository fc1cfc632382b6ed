"""Charger models as data: what each charger family really does with OCPP smart charging.

OCPP 1.6 leaves a lot to the charger: which charging-profile purposes it accepts, A or W,
how many stack levels, whether a 0 A limit pauses the car or is ignored, whether a
TxDefaultProfile reaches a transaction that is already running, how it writes card UIDs. The
field is full of chargers that differ here (``references/spec-facts.md`` §2.5), so the gateway
reads these traits from one reviewed TOML file per family in ``hardware/chargers/`` (schema in
``hardware/README.md``, section "Chargers") instead of hard-coding vendor checks.

This module loads and validates those files (:func:`load_models`), picks the model a
configured charger uses (:func:`model_for`), and turns a charger's own ``GetConfiguration``
answer into a model (:func:`model_from_configuration`) for ``edgegw chargers probe``, with
:func:`model_to_toml` to write the result out for review. It does no I/O beyond reading files.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from edgegw.auth.idtags import IdTagFormat
from edgegw.config import ChargerConfig

DEFAULT_MODEL_ID: Final = "generic-ocpp16"
"""The model a charger without ``model = ...`` in the site config uses."""

GATEWAY_PROFILE_ID_BASE: Final = 1_900_000_000
"""First ``chargingProfileId`` the gateway uses for its own profiles (see ``profiles.py``).

Cloud CSMSs number their profiles from small integers; this range keeps ours clear of
theirs, because a profile with the same id *replaces* the installed one."""


class ChargerModelError(ValueError):
    """A charger model file is malformed; each problem names the file and the key path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class Purpose(StrEnum):
    """OCPP 1.6 ``ChargingProfilePurposeType``."""

    CHARGE_POINT_MAX = "ChargePointMaxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"


class RateUnit(StrEnum):
    """OCPP 1.6 ``ChargingRateUnitType``: A per phase, or W in total."""

    A = "A"
    W = "W"


class ZeroCurrent(StrEnum):
    """What the charger does with a 0 A (or 0 W) limit."""

    PAUSE = "pause"
    """Suspends (SuspendedEVSE) and the car resumes when the limit rises: the spec behaviour."""
    NO_RESUME = "no_resume"
    """Pauses, but some cars or firmwares do not resume afterwards. Still used for safety; the
    allocator already keeps pauses rare."""
    IGNORED = "ignored"
    """Accepted, but the car keeps charging: the gateway never relies on it and sends the
    minimum current instead."""
    STOPS_TRANSACTION = "stops_transaction"
    """Ends the transaction: the gateway sends the minimum current instead."""
    REJECTED = "rejected"
    """The charger answers a 0 A profile Rejected (ABB Terra AC, evcc #15493): the gateway
    never sends 0 A and holds the session at its minimum instead, as for ``ignored``."""


class ProfileScope(StrEnum):
    """Where the charger accepts a TxDefaultProfile."""

    CONNECTOR = "connector"
    """On connector 0 (all connectors) and on each connector (the spec)."""
    CHARGER = "charger"
    """On connector 0 only."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SmartCharging(_Model):
    """How the charger takes charging profiles."""

    supported: bool = Field(description="false: no SmartCharging feature profile at all")
    purposes: list[Annotated[Purpose, Strict(False)]] = Field(
        default_factory=list, description="profile purposes it accepts"
    )
    rate_units: list[Annotated[RateUnit, Strict(False)]] = Field(
        default_factory=lambda: [RateUnit.A], description="'A' and/or 'W'; the gateway prefers A"
    )
    max_stack_level: int = Field(
        default=0, ge=0, le=10_000, description="ChargeProfileMaxStackLevel"
    )
    stack_level_zero: bool = Field(
        default=False, description="only stackLevel 0 works (the gateway then uses 0)"
    )
    max_periods: int = Field(default=1, ge=1, description="ChargingScheduleMaxPeriods")
    max_profiles: int = Field(default=1, ge=1, description="MaxChargingProfilesInstalled")
    zero_current: Annotated[ZeroCurrent, Strict(False)] = ZeroCurrent.PAUSE
    tx_default_scope: Annotated[ProfileScope, Strict(False)] = ProfileScope.CONNECTOR
    tx_default_applies_to_running: bool = Field(
        default=True,
        description="a new TxDefaultProfile changes a running transaction (false: next one only)",
    )
    tx_profile_needs_transaction_id: bool = Field(
        default=True, description="a TxProfile must carry the transactionId"
    )
    profile_kind: Literal["Absolute", "Relative"] = Field(
        default="Absolute",
        description="'Absolute' with startSchedule a minute in the past, or 'Relative'",
    )
    valid_from: bool = Field(default=False, description="also send validFrom (a minute ago)")
    profile_id_base: int = Field(
        default=GATEWAY_PROFILE_ID_BASE,
        ge=1,
        le=2_147_000_000,
        description="first chargingProfileId of the gateway's own profiles",
    )

    @field_validator("purposes", "rate_units")
    @classmethod
    def _unique(cls, values: list[StrEnum]) -> list[StrEnum]:
        if len(set(values)) != len(values):
            raise ValueError("lists a value twice")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.supported:
            if not self.purposes:
                raise ValueError("purposes: list at least one purpose when supported = true")
            if not self.rate_units:
                raise ValueError("rate_units: list 'A' and/or 'W' when supported = true")
        elif self.purposes:
            raise ValueError("purposes: must be empty when supported = false")
        return self

    @property
    def gateway_stack_level(self) -> int:
        """Stack level of the gateway's own profiles: the highest the charger allows, so a
        cloud profile of the same purpose can be moved below it."""
        return 0 if self.stack_level_zero else self.max_stack_level

    @property
    def rate_unit(self) -> RateUnit:
        """The unit the gateway sends: A when possible (no voltage assumption needed)."""
        return RateUnit.A if RateUnit.A in self.rate_units else RateUnit.W


class LocalList(_Model):
    """OCPP Local Authorization List support."""

    supported: bool
    max_length: int | None = Field(default=None, ge=1, description="LocalAuthListMaxLength")
    send_max_length: int | None = Field(
        default=None, ge=1, description="SendLocalListMaxLength: entries per SendLocalList"
    )


class MeterValues(_Model):
    """How the gateway asks the charger for the per-phase currents load capping needs."""

    sample_interval_s: int | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="MeterValueSampleInterval the gateway sets (unset: from site.control_interval)",
    )
    measurands: list[str] | None = Field(
        default=None,
        description="what MeterValuesSampledData accepts (unset: unknown, the gateway tries)",
    )


class ChargerModel(_Model):
    """One charger family, as loaded from ``hardware/chargers/<id>.toml``."""

    format: Literal[1]
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1)
    products: list[str] = Field(min_length=1)
    idtag_format: Annotated[IdTagFormat, Strict(False)] = IdTagFormat.AUTO
    phases: Literal[1, 3] = 3
    phase_switching: bool = Field(default=False, description="1/3-phase switching in a session")
    min_current_a: float = Field(default=6.0, ge=0, le=80, allow_inf_nan=False)
    smart_charging: SmartCharging
    local_list: LocalList
    meter_values: MeterValues = Field(default_factory=MeterValues)
    notes: list[str] = Field(default_factory=list, description="shown by probe/check")

    @property
    def cap_purpose(self) -> Purpose | None:
        """Where the gateway keeps a charger's cap: ChargePointMaxProfile when it can (one
        profile for the whole charger, untouched by the cloud's Tx profiles), else
        TxDefaultProfile, else per-transaction TxProfile; None: no smart charging."""
        sc = self.smart_charging
        if not sc.supported:
            return None
        for purpose in (Purpose.CHARGE_POINT_MAX, Purpose.TX_DEFAULT, Purpose.TX):
            if purpose in sc.purposes:
                return purpose
        return None

    @property
    def can_pause(self) -> bool:
        """A 0 A limit pauses the car (possibly without a reliable resume)."""
        return self.smart_charging.zero_current in (ZeroCurrent.PAUSE, ZeroCurrent.NO_RESUME)


# --------------------------------------------------------------------------------------------
# Loading


def parse_model(data: Mapping[str, Any], source: str = "<charger model>") -> ChargerModel:
    """Validate already-parsed TOML data; errors name ``source`` and each key path."""
    try:
        return ChargerModel.model_validate(data)
    except ValidationError as exc:
        raise ChargerModelError([f"{source}: {_describe(e)}" for e in exc.errors()]) from None


def load_model(path: Path | Traversable | str) -> ChargerModel:
    """Read and validate one model file; its ``id`` must equal the file name.

    ``path`` may be a shipped file (``importlib.resources``); see ``edgegw.hardware_catalogue``.
    """
    path = Path(path) if isinstance(path, str) else path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ChargerModelError([f"{path}: not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ChargerModelError([f"{path}: cannot read: {exc.strerror}"]) from None
    model = parse_model(data, source=str(path))
    if model.id != path.name.removesuffix(".toml"):
        raise ChargerModelError(
            [f"{path}: id {model.id!r} differs from the file name; name the file {model.id}.toml"]
        )
    return model


def load_models(directory: Path | str) -> dict[str, ChargerModel]:
    """Load every ``*.toml`` in ``directory``, keyed by id; every broken file is reported.

    The default model (:data:`DEFAULT_MODEL_ID`) must be among them: a charger without a
    ``model`` in the site config falls back to it.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ChargerModelError([f"{directory}: not a directory of charger models"])
    models: dict[str, ChargerModel] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            model = load_model(path)
        except ChargerModelError as exc:
            problems.extend(exc.problems)
            continue
        models[model.id] = model
    if DEFAULT_MODEL_ID not in models and not problems:
        problems.append(f"{directory}: the default model {DEFAULT_MODEL_ID}.toml is missing")
    if problems:
        raise ChargerModelError(problems)
    return models


def model_for(models: Mapping[str, ChargerModel], charger: ChargerConfig | None) -> ChargerModel:
    """The model a configured charger uses (its ``model``, else the default)."""
    wanted = DEFAULT_MODEL_ID if charger is None or charger.model is None else charger.model
    try:
        return models[wanted]
    except KeyError:
        known = ", ".join(sorted(models)) or "none"
        who = f"charger {charger.id!r}: " if charger is not None else ""
        raise ChargerModelError(
            [f"{who}model {wanted!r} is not a known charger model (known: {known})"]
        ) from None


def _describe(error: ErrorDetails) -> str:
    path = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key (see hardware/README.md, section Chargers)"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "value_error":
        return f"{path}: {error.get('ctx', {}).get('error', error['msg'])}"
    return f"{path}: {error['msg']} (got {error['input']!r})"


# --------------------------------------------------------------------------------------------
# Probing


def configuration_keys(answer: Mapping[str, Any]) -> dict[str, str]:
    """``{key: value}`` from a GetConfiguration.conf payload (keys without a value left out)."""
    keys: dict[str, str] = {}
    for entry in answer.get("configurationKey") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("key"), str):
            value = entry.get("value")
            if value is not None:
                keys[entry["key"]] = str(value)
    return keys


def _int_key(keys: Mapping[str, str], name: str) -> int | None:
    raw = keys.get(name, "").strip()
    return int(raw) if raw.isdigit() else None


def _csl(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def model_from_configuration(
    answer: Mapping[str, Any],
    *,
    base: ChargerModel,
    model_id: str = "probed",
    name: str | None = None,
    products: Iterable[str] = (),
) -> ChargerModel:
    """A model from a charger's ``GetConfiguration`` answer, on top of ``base``.

    What the configuration keys tell (feature profiles, stack levels, units, periods, profile
    count, local list sizes) replaces ``base``; what they cannot tell (which purposes really
    work, 0 A behaviour, idTag format, TxDefaultProfile reaching a running transaction) is
    kept from ``base`` and noted, so the installer reviews it before relying on it. A unit
    key with the non-standard values ``A``/``W`` is read as ``Current``/``Power`` (seen in the
    field, spec-facts §2.5).
    """
    keys = configuration_keys(answer)
    notes = [f"probed from GetConfiguration; unprobed traits taken from {base.id!r}"]
    sc: dict[str, Any] = base.smart_charging.model_dump()
    local: dict[str, Any] = base.local_list.model_dump()
    features = (
        set(_csl(keys["SupportedFeatureProfiles"])) if "SupportedFeatureProfiles" in keys else None
    )
    if features is not None:
        sc["supported"] = "SmartCharging" in features
        local["supported"] = "LocalAuthListManagement" in features
    if not sc["supported"]:
        sc["purposes"] = []
        notes.append("no SmartCharging feature profile: the gateway cannot cap this charger")
    elif not sc["purposes"]:
        sc["purposes"] = list(Purpose)
    stack = _int_key(keys, "ChargeProfileMaxStackLevel")
    if stack is not None:
        sc["max_stack_level"] = stack
    periods = _int_key(keys, "ChargingScheduleMaxPeriods")
    if periods:
        sc["max_periods"] = periods
    installed = _int_key(keys, "MaxChargingProfilesInstalled")
    if installed:
        sc["max_profiles"] = installed
    if "ChargingScheduleAllowedChargingRateUnit" in keys:
        units: list[RateUnit] = []
        for item in _csl(keys["ChargingScheduleAllowedChargingRateUnit"]):
            unit = {"current": RateUnit.A, "a": RateUnit.A, "power": RateUnit.W, "w": RateUnit.W}
            found = unit.get(item.lower())
            if found is not None and found not in units:
                units.append(found)
        if units:
            sc["rate_units"] = units
        else:
            notes.append("ChargingScheduleAllowedChargingRateUnit unreadable; units from base")
    for key, field in (
        ("LocalAuthListMaxLength", "max_length"),
        ("SendLocalListMaxLength", "send_max_length"),
    ):
        value = _int_key(keys, key)
        if value:
            local[field] = value
    switching = keys.get("ConnectorSwitch3to1PhaseSupported", "").lower()
    data: dict[str, Any] = base.model_dump()
    data.update(
        id=model_id,
        name=name or f"{base.name} (probed)",
        products=list(products) or base.products,
        smart_charging=sc,
        local_list=local,
        phase_switching=switching == "true" if switching else base.phase_switching,
        notes=notes,
    )
    return ChargerModel.model_validate(data, strict=False)


# --------------------------------------------------------------------------------------------
# Writing


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return json.dumps(value.value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def model_to_toml(model: ChargerModel) -> str:
    """The model as a TOML file that :func:`load_model` reads back to an equal model."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in model.model_dump().items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for table, values in tables:
        lines.append("")
        lines.append(f"[{table}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None)
    return "\n".join(lines) + "\n"
