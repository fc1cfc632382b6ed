"""The report of a cloud check (:class:`CloudCheck`, one :class:`CheckStep` per layer) and what
the steps share: the target, the identity the gateway connects as, a stopwatch.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from edgegw.config import ChargerConfig


class StepStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a step status, not a password
    WARN = "warn"
    """Works, but needs attention soon (e.g. a certificate about to expire)."""
    FAIL = "fail"
    SKIP = "skip"
    """Not tried: not applicable (no TLS on ws://) or an earlier step failed."""


@dataclass(frozen=True, slots=True)
class CheckStep:
    """One step of the check: what was tried, how it went, how long it took, what to do."""

    name: str
    """``dns``, ``tcp``, ``tls`` or ``ocpp:<charger id>``."""
    title: str
    status: StepStatus
    detail: str
    seconds: float | None = None
    hint: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status is StepStatus.FAIL

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "seconds": None if self.seconds is None else round(self.seconds, 4),
            "detail": self.detail,
            "hint": self.hint,
            "facts": dict(self.facts),
        }


@dataclass(frozen=True, slots=True)
class CloudCheck:
    """The whole report: the base URL checked and every step in order."""

    url: str
    steps: tuple[CheckStep, ...]

    @property
    def ok(self) -> bool:
        """No step failed (warnings and skipped-as-not-applicable steps are fine)."""
        return not any(step.failed for step in self.steps) and not any(
            step.status is StepStatus.SKIP and step.facts.get("blocked_by") for step in self.steps
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "url": self.url,
            "steps": [step.as_dict() for step in self.steps],
        }


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the handshake claims to be: the charger id and its cloud Basic-auth credentials."""

    charger_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, charger: ChargerConfig) -> Identity:
        password = charger.cloud_password
        return cls(
            charger.id,
            charger.cloud_username or charger.id,
            None if password is None else password.get_secret_value(),
        )

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header the gateway sends for this charger (if any)."""
        if self.password is None:
            return {}
        user = self.username or self.charger_id
        token = base64.b64encode(f"{user}:{self.password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = 443 if parts.scheme == "wss" else 80
    return _Target(parts.scheme, host, parts.port or default)


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


class _Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def _skipped(name: str, title: str, blocked_by: str) -> CheckStep:
    return CheckStep(
        name,
        title,
        StepStatus.SKIP,
        f"not tried: the {blocked_by.upper()} step failed",
        facts={"blocked_by": blocked_by},
    )


def _setup_failure(name: str, title: str, reason: str) -> CheckStep:
    return CheckStep(
        name,
        title,
        StepStatus.FAIL,
        f"cannot set up TLS: {reason}",
        0.0,
        "check [cloud] ca_file and the client certificate and key files (readable, PEM)",
    )
