"""What every section shares: the error listing all problems, the base model and its one
check that every float setting is finite and inside its range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args

import annotated_types
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

DEFAULT_CONFIG_PATH = Path("/etc/edgegw/edgegw.toml")


# OCPP 2.0.1 limits the identity to 48 chars and forbids ':' (it is the Basic-auth user name);
# '/' would break the URL path. We apply the same rule to 1.6 so configs survive an upgrade.
CHARGER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._\-*+=|@~]{1,48}$")


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every one of them."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


FLOAT_CEILING = 1e6
"""The largest magnitude any float setting may have where its field sets no tighter bound
(seconds, amps, days, rates): more is a typo or an attack (1e308 lifts load capping)."""


class _FiniteFloats(BaseModel):
    """Every float of a model that inherits this is a finite number inside its range.

    One check for all of them: the range is the field's own ``ge``/``gt``/``le``/``lt`` and
    +-:data:`FLOAT_CEILING` where it sets none; per-phase lists are checked value by value;
    numbers written as strings (``"nan"``) too. It runs before pydantic's own checks, so every
    such problem reads the same: the key path (added by pydantic), then the allowed range.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _finite_floats(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or not _holds_float(field.annotation):
            return value
        for item in value if isinstance(value, list | tuple) else (value,):
            number = _as_number(item)
            if number is not None:
                _check_float(number, field.metadata)
        return value


def _holds_float(annotation: Any) -> bool:
    """``float``, or a union or tuple with a float in it (``float | tuple[float, ...]``)."""
    if annotation is float:
        return True
    return any(_holds_float(arg) for arg in get_args(annotation))


def _as_number(item: Any) -> float | None:
    """The number ``item`` stands for, or None when it is none (pydantic reports that)."""
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return float(item) if abs(item) < 2**1023 else math.inf
    if isinstance(item, float):
        return item
    if isinstance(item, str):
        try:
            return float(item)
        except ValueError:
            return None
    return None


def _check_float(number: float, metadata: Sequence[Any]) -> None:
    low, low_open, high, high_open = -FLOAT_CEILING, False, FLOAT_CEILING, False
    for bound in metadata:
        if isinstance(bound, annotated_types.Ge):
            low, low_open = float(bound.ge), False  # type: ignore[arg-type]
        elif isinstance(bound, annotated_types.Gt):
            low, low_open = float(bound.gt), True  # type: ignore[arg-type]
        elif isinstance(bound, annotated_types.Le):
            high, high_open = min(float(bound.le), FLOAT_CEILING), False  # type: ignore[arg-type]
        elif isinstance(bound, annotated_types.Lt):
            high, high_open = min(float(bound.lt), FLOAT_CEILING), True  # type: ignore[arg-type]
    inside = (number > low if low_open else number >= low) and (
        number < high if high_open else number <= high
    )
    if not (math.isfinite(number) and inside):
        raise ValueError(
            f"must be a finite number {'>' if low_open else '>='} {_bound(low)} and "
            f"{'<' if high_open else '<='} {_bound(high)} (got {number:g})"
        )


def _bound(number: float) -> str:
    return str(int(number)) if number.is_integer() else f"{number:g}"


class _Model(_FiniteFloats):
    model_config = ConfigDict(extra="forbid", frozen=True)


_M = TypeVar("_M", bound=BaseModel)
