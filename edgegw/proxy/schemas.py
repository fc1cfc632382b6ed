"""OCPP 1.6 actions and JSON-schema checks, using the schemas shipped with the ``ocpp`` library.

The library maps schema failures to OCPP 2.0.1 error names; OCPP-J 1.6 spells some of them
differently (``FormationViolation``, ``OccurenceConstraintViolation``), so the mapping is ours.

Every charger call is checked, so the check is on the relay's hot path: ``jsonschema`` walking
a MeterValues was a quarter of the gateway's CPU at 2,000 chargers. Each schema is therefore
also compiled (:mod:`edgegw.proxy.fastschema`, on an action's first use) into one generated
function that can only say "valid"; ``jsonschema`` still has the last word on everything else
and writes every error message. The compiled check reads the schema file itself, so
``jsonschema`` (and the ``ocpp`` library's validators) are imported only by the first payload
the fast check cannot pass or the decimal schemas below: ~3 MiB of the daemon's memory that a
site whose chargers send valid frames never needs.

``multipleOf`` is ours: jsonschema's raises (``TypeError``, ``decimal.InvalidOperation``) on a
decimal limit as large as Java's ``Float.MAX_VALUE`` (3.4028235E38, a real CSMS's "no limit")
or on a non-finite number. Ours is exact on the number as written, so a huge limit is a valid
multiple of 0.1 (the energy controller clamps it to the site cap) and a non-finite one is a
violation. Whatever the payload, the check raises :class:`SchemaViolation` and nothing else.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable, Iterator
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from edgegw.proxy.fastschema import compile_schema

if TYPE_CHECKING:
    from jsonschema import Draft4Validator
    from jsonschema.exceptions import ValidationError as SchemaError

# Calls a charge point sends to its CSMS (core, security extension).
CHARGER_ACTIONS = frozenset(
    {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        "LogStatusNotification",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
    }
)

# Calls a CSMS sends to a charge point.
CSMS_ACTIONS = frozenset(
    {
        "CancelReservation",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetLocalListVersion",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
        "CertificateSigned",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetInstalledCertificateIds",
        "GetLog",
        "InstallCertificate",
        "SignedUpdateFirmware",
    }
)

ALL_ACTIONS = CHARGER_ACTIONS | CSMS_ACTIONS

# Schemas with decimal fields (multipleOf 0.1) must be checked with Decimal floats.
_DECIMAL_CALLS = frozenset({"SetChargingProfile", "RemoteStartTransaction"})
_DECIMAL_RESULTS = frozenset({"GetCompositeSchedule"})

_CODES = {
    "type": "TypeConstraintViolation",
    "maxLength": "TypeConstraintViolation",
    "required": "ProtocolError",  # 1.6: "Payload for Action is incomplete"
    "additionalProperties": "FormationViolation",
    "enum": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
}


class SchemaViolation(ValueError):
    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _exact(number: Any) -> Fraction:
    """The number as it was written (a float by its shortest repr, as JSON carried it)."""
    if isinstance(number, float):
        return Fraction(decimal.Decimal(repr(number)))
    return Fraction(number)


def _multiple_of(
    validator: Draft4Validator, step: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[SchemaError]:
    from jsonschema.exceptions import ValidationError as SchemaError  # noqa: PLC0415

    if not validator.is_type(instance, "number"):
        return
    try:
        ratio = _exact(instance) / _exact(step)
    except (ValueError, OverflowError, ArithmeticError):  # NaN, Infinity
        yield SchemaError(f"{instance} is not a finite number")
        return
    if ratio.denominator != 1:
        yield SchemaError(f"{instance} is not a multiple of {step}")


@cache
def _validator_class() -> type[Draft4Validator]:
    """Draft 4 with our ``multipleOf`` (jsonschema imported here: see the module docstring)."""
    from jsonschema import Draft4Validator  # noqa: PLC0415
    from jsonschema.validators import extend  # noqa: PLC0415

    validator: type[Draft4Validator] = extend(Draft4Validator, {"multipleOf": _multiple_of})
    return validator


@cache
def _validator(kind: int, action: str, use_decimal: bool) -> Draft4Validator:
    from ocpp.messages import get_validator  # noqa: PLC0415 (it imports jsonschema)

    parse_float: Any = decimal.Decimal if use_decimal else float
    # The ocpp library caches one validator per schema, whichever parse_float came first;
    # ours copes with either (see _exact).
    schema = get_validator(kind, action, "1.6", parse_float=parse_float).schema
    return _validator_class()(schema)


_SUFFIX = {2: "Request", 3: "Response"}
_SCHEMAS_16 = resources.files("ocpp") / "v16" / "schemas"


def _schema_file(kind: int, action: str, version: str) -> dict[str, Any]:
    """An action's schema read as the ``ocpp`` library's ``get_validator`` reads it (numbers
    as floats), without its validator: the compiled check needs the schema only."""
    if version == "1.6":
        name = f"{action}Response" if kind == 3 else action
        entry = _SCHEMAS_16 / f"{name}.json"
    else:
        entry = _SCHEMAS_201 / f"{action}{_SUFFIX[kind]}.json"
    # utf-8-sig: the 2.0.1 schema files start with a byte order mark
    schema: dict[str, Any] = json.loads(entry.read_text(encoding="utf-8-sig"))
    return schema


@cache
def _fast(kind: int, action: str) -> Callable[[Any], bool] | None:
    """The compiled "certainly valid" check of a float-parsed schema (None: none could be made)."""
    return compile_schema(_schema_file(kind, action, "1.6"), f"1.6 {action}{_SUFFIX[kind]}")


def _check(kind: int, action: str, payload: dict[str, Any], use_decimal: bool) -> None:
    """jsonschema's verdict (the callers asked the fast check first, where there is one)."""
    try:
        if use_decimal:
            text = json.dumps(payload, allow_nan=False)
            payload = json.loads(text, parse_float=decimal.Decimal)
        error: SchemaError | None = next(
            iter(_validator(kind, action, use_decimal).iter_errors(payload)), None
        )
    except (ArithmeticError, TypeError, ValueError, RecursionError) as exc:
        # A payload the checker itself chokes on (NaN, a cycle, a number no type holds) is
        # no valid message: say so, as a violation, rather than crash the link.
        raise SchemaViolation(
            "FormationViolation", f"{action}: payload cannot be checked: {exc}"[:255]
        ) from None
    if error is None:
        return
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    code = _CODES.get(str(error.validator), "FormationViolation")
    raise SchemaViolation(code, f"{action}: {where}: {error.message}"[:255])


# ------------------------------------------------------------------ OCPP 2.0.1

_SCHEMAS_201 = resources.files("ocpp") / "v201" / "schemas"
"""Found without importing ``ocpp.v201``: its package imports the library's 2.0.1 dataclasses
(~0.1 s and megabytes of the daemon's memory, for nothing the gateway uses)."""
ACTIONS_201 = frozenset(
    entry.name.removesuffix("Request.json")
    for entry in _SCHEMAS_201.iterdir()
    if entry.name.endswith("Request.json")
)
"""Every OCPP 2.0.1 action (either direction: 2.0.1 names say who sends them)."""

_CODES_201 = {
    **_CODES,
    "additionalProperties": "FormatViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
    "required": "OccurrenceConstraintViolation",
}
"""OCPP-J 2.0.1 spells the codes right, and a missing field is an occurrence violation."""


@cache
def _validator_201(kind: int, action: str) -> Draft4Validator:
    from ocpp.messages import get_validator  # noqa: PLC0415 (it imports jsonschema)

    schema = get_validator(kind, action, "2.0.1").schema
    return _validator_class()(schema)


@cache
def _fast_201(kind: int, action: str) -> Callable[[Any], bool] | None:
    schema = _schema_file(kind, action, "2.0.1")
    return compile_schema(schema, f"2.0.1 {action}{_SUFFIX[kind]}")


def check_call_201(action: str, payload: dict[str, Any]) -> None:
    """Raise :class:`SchemaViolation` if ``payload`` is not a valid OCPP 2.0.1 ``action``
    request (2.0.1 error codes). Compiled as the 1.6 checks are; jsonschema has the last word."""
    try:
        fast = _fast_201(2, action)
        if fast is not None and fast(payload):
            return
        error: SchemaError | None = next(iter(_validator_201(2, action).iter_errors(payload)), None)
    except (ArithmeticError, TypeError, ValueError, RecursionError) as exc:
        raise SchemaViolation(
            "FormatViolation", f"{action}: payload cannot be checked: {exc}"[:255]
        ) from None
    if error is None:
        return
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    code = _CODES_201.get(str(error.validator), "FormatViolation")
    raise SchemaViolation(code, f"{action}: {where}: {error.message}"[:255])


def check_call(action: str, payload: dict[str, Any]) -> None:
    """Raise :class:`SchemaViolation` if ``payload`` is not a valid ``action`` request."""
    use_decimal = action in _DECIMAL_CALLS
    if not use_decimal:  # the hot path: one cache look-up and the compiled check
        fast = _fast(2, action)
        if fast is not None and fast(payload):
            return
    _check(2, action, payload, use_decimal)


def check_result(action: str, payload: dict[str, Any]) -> None:
    """Raise :class:`SchemaViolation` if ``payload`` is not a valid ``action`` response."""
    use_decimal = action in _DECIMAL_RESULTS
    if not use_decimal:
        fast = _fast(3, action)
        if fast is not None and fast(payload):
            return
    _check(3, action, payload, use_decimal)
