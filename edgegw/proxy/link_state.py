"""The relay core's state: the calls in flight and waiting in each direction, the outbox
window, the transaction-id map, what to replay when the cloud returns, and what the shell reads
of it. The layers above (frames, offline queue, pending calls, :class:`~edgegw.proxy.link.Link`)
add behaviour, never state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgegw.ocpp.versions import OCPP16
from edgegw.proxy.frames import Call, CallError, CallResult
from edgegw.proxy.hooks import SiteOverride
from edgegw.proxy.link_commands import (
    STALL_FACTOR,
    TRANSACTION_EVENT,
    Command,
    Origin,
    SyncParams,
    ToCharger,
    ToCloud,
    is_transaction_message,
)
from edgegw.security.quiet_log import QuietLog
from edgegw.store.outbox import QueuedMessage


@dataclass(slots=True)
class _Pending:
    origin: Origin
    call: Call
    epoch: int = 0  # cloud connection epoch for CLOUD-origin calls
    deadline: float = 0.0
    message: QueuedMessage | None = None  # what is being delivered (OUTBOX; an overdue CHARGER)
    sent_at: float = 0.0  # when it went to the cloud
    overdue: bool = False  # its deadline passed: the charger was answered locally
    orphaned: bool = False  # the charger connection that sent it has gone
    late: CallResult | CallError | None = None  # the cloud's answer, waiting for the local one
    maybe_sent: bool = False  # sent on a cloud connection that closed before it answered
    local_wanted: bool = False  # overdue while the local responder was busy
    asked: Call | None = None  # CLOUD: the cloud's call before the filters (charger's ids)


@dataclass(slots=True)
class LinkStats:
    from_charger: int = 0
    from_cloud: int = 0
    rejected: int = 0
    answered_locally: int = 0
    timeouts: int = 0
    delivered: int = 0
    parked: int = 0


@dataclass(slots=True)
class _Replay:
    boot: Call | None = None  # latest BootNotification answered locally, not yet relayed
    status: dict[tuple[int, int], Call] = field(default_factory=dict)  # latest per connector
    errors: list[Call] = field(default_factory=list)  # every error status (2.x: NotifyEvent)


log = logging.getLogger("edgegw.proxy.link")


class _LinkState:
    """All of a link's state, and the reads of it that the shell and the layers above share."""

    def __init__(
        self,
        charger_id: str,
        *,
        cloud_configured: bool,
        validate: bool,
        call_timeout: float,
        clock: Callable[[], float],
        new_id: Callable[[], str],
        authorize_timeout: float | None = None,
        sync: SyncParams | None = None,
        transaction_ids: dict[int, int | None] | None = None,
        parked_transactions: set[int] | None = None,
        cloud_filter: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
        answer_local_list: bool = False,
        check_resent: bool = False,
        stall_timeout: float | None = None,
        site_answer: Callable[[str, dict[str, Any], dict[str, Any]], SiteOverride | None]
        | None = None,
        site_call: Callable[[str, dict[str, Any]], SiteOverride | None] | None = None,
    ) -> None:
        self.charger_id = charger_id
        self.version = OCPP16
        """The charger's OCPP version (its subprotocol): 2.x traffic passes untouched."""
        self._v16 = True
        self.cloud_configured = cloud_configured
        self._validate = validate
        self._call_timeout = call_timeout
        self._authorize_timeout = authorize_timeout or call_timeout
        self._stall_timeout = stall_timeout or STALL_FACTOR * call_timeout
        self._sync = sync or SyncParams()
        self._cloud_filter = cloud_filter
        # The site's card authority: may overrule the cloud's Accepted (see edgegw.proxy.hooks).
        self._site_answer = site_answer
        self._site_call = site_call
        self._answer_local_list = answer_local_list
        # Transaction messages are looked up in the outbox until the first new one (see
        # edgegw.proxy.link).
        self._check_resent = check_resent and cloud_configured
        self._may_resend = self._check_resent
        # Local transaction id -> the cloud's (None until its StartTransaction was accepted).
        self._tx_map: dict[int, int | None] = dict(transaction_ids or {})
        self._to_local: dict[int, int] = {c: lo for lo, c in self._tx_map.items() if c is not None}
        self._parked_tx: set[int] = set(parked_transactions or ())
        # Local ids whose start the cloud answered without a usable id: why, for their followers.
        self._no_cloud_id: dict[int, str] = {}
        # Queued messages sent on a connection that closed before the cloud answered them.
        self._maybe_delivered: set[int] = set()
        # Queued messages completed by a late answer before they were read into the window.
        self._done_seqs: set[int] = set()
        # The outbox: a window of the queued messages, the rest stay on disk until needed.
        self._outbox: list[QueuedMessage] = []  # (lists: a few items at most, 56 B empty)
        self._outbox_more = False
        self._outbox_loading = cloud_configured  # the shell loads it first thing
        self._outbox_last_seq = 0
        self._retry_at = 0.0
        self._reload = False
        self._clock = clock
        self._new_id = new_id
        self.cloud_up = False
        # Until the first connection attempt to the cloud has succeeded or failed, charger calls
        # wait: answering them locally in that moment would make the gateway visible.
        self.cloud_connecting = cloud_configured
        self._epoch = 0
        self._to_cloud: list[_Pending] = []
        self._cloud_inflight: _Pending | None = None
        self._local_inflight: _Pending | None = None
        self._to_charger: list[_Pending] = []
        self._charger_inflight: _Pending | None = None
        self._replay = _Replay()
        self._charger_gone = False
        self.stats = LinkStats()
        # What a peer sends wrong is logged once a minute per kind, with a count of the rest.
        self._quiet = QuietLog(log, max_keys=16, clock=clock)

    def _is_tx(self, call: Call) -> bool:
        """A transaction message of the link's version: queued durably when the cloud cannot
        take it (1.6: StartTransaction, StopTransaction, MeterValues of a transaction; 2.x:
        TransactionEvent)."""
        if self._v16:
            return is_transaction_message(call)
        return call.action == TRANSACTION_EVENT

    @property
    def queued_to_cloud(self) -> int:
        return len(self._to_cloud) + (self._cloud_inflight is not None)

    @property
    def queued_to_charger(self) -> int:
        return len(self._to_charger) + (self._charger_inflight is not None)

    @property
    def outbox_pending(self) -> bool:
        """Transaction messages are waiting in the outbox (new ones must queue behind them)."""
        return bool(self._outbox) or self._outbox_more or self._outbox_loading

    @property
    def outbox_window(self) -> int:
        return len(self._outbox)

    @property
    def owes_cloud(self) -> bool:
        """The cloud is owed something: an unanswered call, or queued transaction messages.

        While it is, the link's cloud connection stays open even if the charger has gone. The
        outbox window holds only messages of the link's OCPP version (see
        :meth:`~edgegw.proxy.link_pending._PendingCalls.outbox_loaded`): a 1.6 backlog is never
        sent over a 2.x cloud link nor a 2.x one over a 1.6 link; it stays queued for a link of
        its own version (the charger speaking it again, or the drain at the next start).
        """
        return (
            self._cloud_inflight is not None
            or self._local_inflight is not None
            or (self.cloud_configured and self.outbox_pending)
        )

    def next_deadline(self) -> float | None:
        # Asked after every event: no list, no min() over one or two values.
        cloud, charger = self._cloud_inflight, self._charger_inflight
        at = None if charger is None else charger.deadline
        if cloud is not None or self.cloud_connecting:
            first = cloud.deadline if cloud is not None else None
            if self._local_inflight is None:
                # A charger call waiting behind a busy cloud is answered locally at its deadline.
                waiting = self._waiting_charger_call()
                if waiting is not None and (first is None or waiting.deadline < first):
                    first = waiting.deadline
            if first is None:
                return at
        elif self._retry_at and self.cloud_up:
            first = self._retry_at
        else:
            return at
        return first if at is None or first < at else at

    def _waiting_charger_call(self) -> _Pending | None:
        """The oldest charger call still waiting for the cloud (replays may stand before it)."""
        for item in self._to_cloud:
            if item.origin is Origin.CHARGER:
                return None if item.late is not None else item
        return None

    @property
    def cloud_epoch(self) -> int:
        """Changes whenever the cloud connection comes or goes."""
        return self._epoch

    def _cloud_frame(self, frame: str) -> ToCloud:
        return ToCloud(frame, self._epoch)

    def _pump_charger(self) -> list[Command]:
        if self._charger_inflight is not None or not self._to_charger:
            return []
        pending = self._to_charger.pop(0)
        pending.deadline = self._clock() + self._call_timeout
        self._charger_inflight = pending
        return [ToCharger(pending.call.raw)]
