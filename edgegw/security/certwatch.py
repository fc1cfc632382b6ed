"""The daemon warns, in its log and its event list, before one of its certificates expires.

A site goes dark the day its TLS server certificate expires (chargers refuse the connection)
or its cloud client certificate does (Security Profile 3: the cloud refuses the gateway), and
nobody runs ``edgegw doctor`` every day. :class:`CertWatch` checks every certificate file the
configuration names when the daemon starts, then once a day, and again whenever the daemon
calls :meth:`CertWatch.check_now` (after a reload). A certificate that is expired, not yet
valid or has fewer than :data:`~edgegw.security.certs.CERT_WARN_DAYS` days left gets one log
line (WARNING while it still works, ERROR once it does not) naming the file, the subject, the
date and what breaks, and one event for the caretaker's screens.

The same warning is given at most once a day (a reload does not repeat it), a file that
cannot be read is reported once until it can be read again, and a problem that goes away
(a renewed file) is logged once at INFO. The OCPP server reads its TLS files only at start, so
for those the certificate judged is the one the daemon loaded, not a newer file on disk: a
renewed server certificate still warns, saying a restart is needed to use it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from edgegw.config import Config
from edgegw.security.certs import (
    CERT_WARN_DAYS,
    CertificateFile,
    CertificateInfo,
    Validity,
    certificate_files,
    read_certificates,
)
from edgegw.store.events import EventRecorder
from edgegw.tasks import TaskOwner

__all__ = [
    "CHECK_INTERVAL_S",
    "REPEAT_AFTER_S",
    "CertWatch",
    "EventRecorder",
    "Finding",
]

log = logging.getLogger(__name__)

CHECK_INTERVAL_S: Final = 86400.0
"""The files are checked at start, then this often."""
REPEAT_AFTER_S: Final = 23 * 3600.0
"""A warning given less than this long ago is not given again: a day, less an hour so that a
daily check running a little early (the loop's timer and the wall clock drift apart) is never
silenced until the day after."""

_READ: Final = "read"
_VALIDITY: Final = "validity"

_LEVELS: Final = {
    Validity.EXPIRING: logging.WARNING,
    Validity.EXPIRED: logging.ERROR,
    Validity.NOT_YET_VALID: logging.ERROR,
}
_TEMPLATES: Final = {
    Validity.EXPIRING: ("%s certificate %s (%s) expires on %s, in %d day(s): then %s; renew it%s"),
    Validity.EXPIRED: "%s certificate %s (%s) expired on %s (%d day(s) ago): %s; renew it%s",
    Validity.NOT_YET_VALID: (
        "%s certificate %s (%s) is valid only from %s (in %d day(s)): until then %s; "
        "a certificate installed early, or the system clock is wrong%s"
    ),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one certificate file, as it was logged and recorded."""

    path: Path
    state: str
    """A :class:`~edgegw.security.certs.Validity` value other than ``valid``, or ``unreadable``."""
    level: int
    """The logging level it was logged at."""
    template: str
    args: tuple[Any, ...]
    charger_id: str | None
    data: dict[str, Any] = field(hash=False)
    signature: tuple[str, ...]
    """What makes two findings the same warning (the day count is not part of it)."""

    @property
    def kind(self) -> str:
        """The event kind, e.g. ``security.certificate_expiring``."""
        return f"security.certificate_{self.state}"

    @property
    def message(self) -> str:
        return self.template % self.args

    @property
    def aspect(self) -> str:
        return _READ if self.state == "unreadable" else _VALIDITY


@dataclass(frozen=True, slots=True)
class _Watched:
    """One file, with every configuration field that names it."""

    path: Path
    uses: tuple[CertificateFile, ...]

    @property
    def name(self) -> str:
        return " and ".join(u.key for u in self.uses)

    @property
    def fields(self) -> list[str]:
        return [u.field for u in self.uses]

    @property
    def loaded_at_start(self) -> bool:
        return any(u.loaded_at_start for u in self.uses)

    @property
    def is_ca(self) -> bool:
        return all(u.is_ca for u in self.uses)

    @property
    def breaks(self) -> str:
        return "; ".join(dict.fromkeys(u.breaks for u in self.uses))

    @property
    def charger_id(self) -> str | None:
        ids = {u.charger_id for u in self.uses}
        return ids.pop() if len(ids) == 1 else None


@dataclass(frozen=True, slots=True)
class _Reported:
    signature: tuple[str, ...]
    at: float
    finding: Finding


def _watch_list(files: Iterable[CertificateFile]) -> list[_Watched]:
    grouped: dict[Path, list[CertificateFile]] = {}
    for one in files:
        grouped.setdefault(one.path, []).append(one)
    return [_Watched(path, tuple(uses)) for path, uses in grouped.items()]


def _judged(certificates: list[CertificateInfo], is_ca: bool) -> CertificateInfo:
    """The certificate of a file that decides whether it still works.

    The gateway's own chain presents its first (leaf) certificate. A CA bundle works while any
    CA in it does, so the one that lasts longest decides: judging each CA would raise alarms
    for an old CA kept through a rotation, or for every expiring root of a system bundle.
    """
    if is_ca:
        return max(certificates, key=lambda c: c.not_after)
    return certificates[0]


class CertWatch:
    """Checks the configuration's certificate files at start, daily and on demand.

    ``record_event`` is the store's event log (:meth:`~edgegw.store.store.Store.event`);
    ``clock`` gives the wall time the certificates are judged against, ``sleep`` waits
    between daily checks (both replaceable so tests need not wait a day). :meth:`close`
    stops the daily checks.
    """

    def __init__(
        self,
        config: Config,
        *,
        record_event: EventRecorder | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        interval: float = CHECK_INTERVAL_S,
        repeat_after: float = REPEAT_AFTER_S,
        warn_days: int = CERT_WARN_DAYS,
    ) -> None:
        self._files = _watch_list(certificate_files(config))
        self._record_event = record_event
        self._clock = clock
        self._sleep = sleep
        self._interval = interval
        self._repeat_after = repeat_after
        self._warn_days = warn_days
        self._tasks = TaskOwner("certwatch")
        self._started = False
        self._reported: dict[tuple[Path, str], _Reported] = {}
        self._loaded: dict[Path, CertificateInfo] = {}
        """Server files as first read: the certificate the OCPP server loaded at start."""

    @property
    def files(self) -> list[Path]:
        """The certificate files watched, each once."""
        return [w.path for w in self._files]

    @property
    def problems(self) -> list[Finding]:
        """Every problem still standing, as last reported (for status screens)."""
        return [r.finding for r in self._reported.values()]

    async def start(self) -> list[Finding]:
        """Check now, then once a day until :meth:`close`; returns what this check reported."""
        if self._started:
            raise RuntimeError("the certificate watch is already started")
        self._started = True
        found = await self.check_now()
        self._tasks.spawn(self._daily(), "daily")
        return found

    def use_config(self, config: Config) -> None:
        """Watch the files of a reloaded configuration from the next check on. Problems of
        files it no longer names are forgotten; the others keep their once-a-day rule."""
        self._files = _watch_list(certificate_files(config))
        kept = set(self.files)
        self._reported = {k: v for k, v in self._reported.items() if k[0] in kept}
        self._loaded = {k: v for k, v in self._loaded.items() if k in kept}

    async def check_now(self) -> list[Finding]:
        """Check every file now; log and record what is new or due again, and return it."""
        now = self._clock()
        reported: list[Finding] = []
        for watched in self._files:
            findings, in_use = self._examine(watched, now)
            for finding in findings:
                if self._due(finding, now):
                    reported.append(finding)
                    await self._report(finding)
            self._clear(watched, {f.aspect for f in findings}, in_use)
        return reported

    async def close(self) -> None:
        """Stop the daily checks."""
        await self._tasks.close("certificate watch closed")

    # ------------------------------------------------------------------ internals

    async def _daily(self) -> None:
        while True:
            await self._sleep(self._interval)
            try:
                await self.check_now()
            except Exception:  # the next day's check must still happen
                log.exception("checking the certificate files failed")

    def _examine(
        self, watched: _Watched, now: float
    ) -> tuple[list[Finding], CertificateInfo | None]:
        """The problems of one file, and the certificate in use (None if none can be read)."""
        path = watched.path
        findings: list[Finding] = []
        on_disk: CertificateInfo | None = None
        try:
            on_disk = _judged(read_certificates(path), watched.is_ca)
        except OSError as exc:
            findings.append(self._unreadable(watched, f"cannot read it: {exc.strerror or exc}"))
        except ValueError:
            findings.append(self._unreadable(watched, "it holds no PEM certificate"))
        except Exception as exc:  # a certificate the library cannot parse further
            findings.append(self._unreadable(watched, f"cannot parse it: {exc}"))
        in_use = on_disk
        if watched.loaded_at_start:
            if on_disk is not None:
                self._loaded.setdefault(path, on_disk)
            in_use = self._loaded.get(path)
        if in_use is not None:
            validity = in_use.validity(now, self._warn_days)
            if validity is not Validity.VALID:
                newer = on_disk if on_disk is not None and on_disk != in_use else None
                findings.append(self._invalid(watched, in_use, validity, now, newer))
        return findings, in_use

    def _unreadable(self, watched: _Watched, reason: str) -> Finding:
        if watched.loaded_at_start:
            effect = "edgegw keeps what it loaded at start, but will not restart with this file"
        else:
            effect = "new cloud connections fail, and edgegw will not restart with this file"
        return Finding(
            path=watched.path,
            state="unreadable",
            level=logging.ERROR,
            template="%s certificate %s cannot be used (%s): %s; fix or replace the file",
            args=(watched.name, watched.path, reason, effect),
            charger_id=watched.charger_id,
            data={
                "file": str(watched.path),
                "fields": watched.fields,
                "state": "unreadable",
                "error": reason,
            },
            signature=("unreadable",),
        )

    def _invalid(
        self,
        watched: _Watched,
        cert: CertificateInfo,
        validity: Validity,
        now: float,
        newer: CertificateInfo | None,
    ) -> Finding:
        note = ""
        if newer is not None:
            note = (
                f"; the file now holds another certificate (valid until {newer.until}): "
                "restart edgegw to use it"
            )
        days = cert.days_left(now)
        if validity is Validity.EXPIRED:
            date, count = cert.until, -days - 1
        elif validity is Validity.NOT_YET_VALID:
            date, count = cert.since, int((cert.not_before.timestamp() - now) // 86400)
        else:
            date, count = cert.until, days
        return Finding(
            path=watched.path,
            state=validity.value,
            level=_LEVELS[validity],
            template=_TEMPLATES[validity],
            args=(watched.name, watched.path, cert.subject, date, count, watched.breaks, note),
            charger_id=watched.charger_id,
            data={
                "file": str(watched.path),
                "fields": watched.fields,
                "state": validity.value,
                "subject": cert.subject,
                "not_before": cert.not_before.isoformat(),
                "not_after": cert.not_after.isoformat(),
                "days_left": days,
                "restart_needed": newer is not None,
            },
            signature=(
                validity.value,
                cert.fingerprint,
                "" if newer is None else newer.fingerprint,
            ),
        )

    def _due(self, finding: Finding, now: float) -> bool:
        """Whether ``finding`` is to be reported now: new, changed, or a day old (a file that
        cannot be read is reported once)."""
        key = (finding.path, finding.aspect)
        seen = self._reported.get(key)
        if seen is not None and seen.signature == finding.signature:
            if finding.aspect == _READ:
                return False  # a file that cannot be read is reported once, not daily
            if now - seen.at < self._repeat_after:
                return False
        self._reported[key] = _Reported(finding.signature, now, finding)
        return True

    async def _report(self, finding: Finding) -> None:
        log.log(finding.level, finding.template, *finding.args)
        if self._record_event is None:
            return
        try:
            await self._record_event(
                finding.kind, finding.message, charger_id=finding.charger_id, data=finding.data
            )
        except Exception:  # the log line is out; a store problem must not stop the watch
            log.warning("recording the %s event failed", finding.kind, exc_info=True)

    def _clear(self, watched: _Watched, standing: set[str], in_use: CertificateInfo | None) -> None:
        """Forget the problems of ``watched`` that are gone, saying so once."""
        for aspect in (_READ, _VALIDITY):
            if aspect in standing or self._reported.pop((watched.path, aspect), None) is None:
                continue
            if aspect == _READ:
                log.info("%s certificate %s can be read again", watched.name, watched.path)
            elif in_use is not None:
                log.info(
                    "%s certificate %s (%s) is valid until %s",
                    watched.name,
                    watched.path,
                    in_use.subject,
                    in_use.until,
                )
