"""One commissioning run: its options, its steps' outcomes, and what its steps share.

:class:`RunState` holds what a run learns as it goes (the charger's configuration keys, its
connectors) and the gateway's parts the steps use; the checklist is built on it from the step
groups in :mod:`~edgegw.commission.checklist`, :mod:`~edgegw.commission.profilecheck` and
:mod:`~edgegw.commission.cardcheck`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from edgegw.auth.idtags import CardId
from edgegw.commission.observer import CommissionObserver
from edgegw.config import ChargerConfig, Config
from edgegw.energy.chargermodels import ChargerModel
from edgegw.energy.sampling import ConfigEntry
from edgegw.store.store import ChargerRow, Store

if TYPE_CHECKING:
    from edgegw.auth.authorizer import Authorizer
    from edgegw.energy.controller import LoadController

JsonDict = dict[str, Any]
CallFn = Callable[[str, str, JsonDict], Awaitable[JsonDict]]
"""``(charger_id, action, payload) -> answer``; raises :class:`NoAnswer` without one."""

StepStatus = Literal["pass", "fail", "skip"]


class SiteView:
    """What a run reads of the running site: its configuration in force (read at each use: a
    reload replaces it), which chargers are connected, its load controller (None: no load
    capping) and its card authority."""

    def __init__(
        self,
        config: Callable[[], Config],
        sessions: Container[str],
        *,
        controller: LoadController | None,
        authorizer: Authorizer | None,
    ) -> None:
        self._config = config
        self.sessions = sessions
        self.controller = controller
        self.authorizer = authorizer

    @property
    def config(self) -> Config:
        return self._config()


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


class NoAnswer(Exception):
    """A gateway call got no usable answer (CALLERROR, timeout, charger gone)."""


def iso(posix: float) -> str:
    """A time for the report: ``2026-11-21 18:05:00 UTC``."""
    return datetime.fromtimestamp(posix, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(now: float, then: float) -> str:
    return f"{max(0.0, now - then):.0f} s ago"


def status_of(answer: Mapping[str, Any]) -> str:
    """The ``status`` of a charger's answer to a gateway call."""
    return str(answer.get("status", "no status"))


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the installer asked of a run: a test card, waiting for a tap, the waits."""

    card: CardId | None
    card_text: str | None
    tap: bool
    step_timeout: float
    tap_timeout: float


class RunState:
    """The checklist for one charger, as far as every step shares it; each step method (in
    the classes built on this one) fills its :class:`Step`."""

    def __init__(
        self,
        *,
        site: SiteView,
        observer: CommissionObserver,
        store: Callable[[], Store],
        call: CallFn,
        clock: Callable[[], float],
        charger_id: str,
        row: ChargerRow | None,
        model: ChargerModel,
        options: RunOptions,
    ) -> None:
        self.gw = site
        self.obs = observer
        self.store = store
        self._call = call
        self.clock = clock
        self.charger_id = charger_id
        self.row = row
        self.opt = options
        self.config: ChargerConfig | None = site.config.charger(charger_id)
        self.model = model
        self.keys: dict[str, ConfigEntry] = {}
        self.connectors: list[int] = [1]
        self.started = clock()
        self.steps = {name: Step(name, title) for name, title in STEPS}

    async def call(self, action: str, payload: JsonDict) -> JsonDict:
        """A gateway call to this charger; raises :class:`NoAnswer` without an answer."""
        return await self._call(self.charger_id, action, payload)

    def phases(self) -> int:
        """How many phases the charger uses at this site."""
        if self.config is not None:
            return len(self.config.site_phases())
        return self.model.phases

    async def trigger(self, message: str, connector: int | None = None) -> str:
        """Ask the charger to send ``message`` (TriggerMessage); its answer's status."""
        payload: JsonDict = {"requestedMessage": message}
        if connector is not None:
            payload["connectorId"] = connector
        return status_of(await self.call("TriggerMessage", payload))
