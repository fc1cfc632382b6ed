"""``edgegw demo``: the whole system on a simulated cloud, chargers and site meter.

A simulated cloud CSMS, the real gateway daemon with a configuration generated in a folder of
its own (charger passwords hashed, the cloud as upstream, load capping on a simulated site
meter), and a fleet of simulated chargers whose drivers tap cards (some accepted, one unknown,
one blocked). Along the way the demo plays two things a site lives through (:class:`Script`):
a short **cloud outage** (the gateway answers the chargers itself and delivers what it kept
when the cloud is back) and a **load-cap event** (a large building load comes on; load
capping cuts the cars and gives the current back afterwards).

What it shows is a compact summary, not the log: on a terminal a status table redrawn in place
once a second, otherwise (CI, a pipe) one short line every :data:`LINE_EVERY` seconds and a
line when a scripted event begins or ends. The gateway's own log goes to a file in the demo's
folder. At the end the demo stops the chargers, lets the gateway deliver what it still owes
the cloud (:func:`drain`), and only then judges the cloud's record (:func:`judge`): a session
whose start was in flight when the chargers stopped is counted, not called missing. It ends
with the commands to look further; the folder is kept for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from edgegw.auth.passwords import hash_password
from edgegw.config import load_config
from edgegw.daemon import Gateway
from edgegw.livestate import LiveChange, SiteLive
from edgegw.sim.cloud import SimCloud, Stall
from edgegw.sim.fleet import FleetStats, SimFleet
from edgegw.sim.meter import SimMeter

log = logging.getLogger("edgegw.demo")

ACCEPTED_TAGS = ("04A2B3C4D5E680", "1EA68671", "DEADBEEF", "CAFE0001")
BLOCKED_TAG = "BADC0FFE"
UNKNOWN_TAG = "0BADF00D"
LINE_EVERY: Final = 10.0
"""Seconds between two status lines when the output is not a terminal."""
REDRAW_EVERY: Final = 1.0
AFTER_EVENT_S: Final = 4.0
"""A status line this long after a scripted event shows what it did."""
STALL_EVERY = 30.0  # s between two stalls of the simulated cloud (with ``cloud_stall``)
DEFAULT_DURATION_S: Final = 90.0
"""How long ``edgegw demo`` runs unless told otherwise (it must end by itself: ``make demo``)."""
MIN_SCRIPTED_S: Final = 20.0
"""Shorter runs leave out the cloud outage and the load-cap event."""
DRAIN_TIMEOUT_S: Final = 20.0
DRAIN_CHECK_S: Final = 0.5
CAR_A: Final = 16.0
"""What a simulated car draws per phase (:class:`~edgegw.sim.charger.SimCharger`'s default)."""
BUILDING_A: Final = 10.0
"""The building's own load per phase, outside the load-cap event."""


# ------------------------------------------------------------------------------ the script


@dataclass(frozen=True, slots=True)
class Script:
    """When the scripted events happen, in seconds from the start."""

    outage_at: float
    outage_s: float
    load_at: float
    load_s: float

    @property
    def ends_at(self) -> float:
        return max(self.outage_at + self.outage_s, self.load_at + self.load_s)


def script_for(duration: float | None) -> Script | None:
    """The events of a run of ``duration`` seconds (None: until Ctrl-C); None if too short.

    The outage starts at a fifth of the run and lasts about a seventh of it (3 to 15 s); the
    load-cap event starts at half the run and lasts a fifth of it (4 to 20 s), so both are
    over, and the cloud has caught up, well before the end.
    """
    if duration is not None and duration < MIN_SCRIPTED_S:
        return None
    span = DEFAULT_DURATION_S if duration is None else duration
    return Script(
        outage_at=round(span / 5, 1),
        outage_s=round(min(15.0, max(3.0, span / 7)), 1),
        load_at=round(span / 2, 1),
        load_s=round(min(20.0, max(4.0, span / 5)), 1),
    )


def site_limit_a(chargers: int) -> float:
    """The demo site's main fuse: room for the building and most, not all, of the cars."""
    return float(round(BUILDING_A + CAR_A * chargers * 0.75))


def event_load_a(limit_a: float) -> float:
    """The building's load during the load-cap event: half the fuse (a heat pump, an oven,
    a lift), so load capping has to cut the cars."""
    return round(limit_a / 2)


# ------------------------------------------------------------------------------ the verdict


@dataclass(frozen=True, slots=True)
class Verdict:
    complete: bool
    lines: tuple[str, ...]


def judge(
    stats: FleetStats,
    cloud_started: int,
    cloud_stopped: int,
    *,
    queued: int | None,
    drained: bool,
) -> Verdict:
    """Whether every session the chargers ran reached the cloud, judged after draining.

    ``stats`` are the chargers' own counts: a start counts there once the charger heard the
    answer. When the demo stops the chargers, a start may be in flight: the gateway took it
    and the cloud recorded it, but the charger never heard back. The cloud then has more
    starts than the chargers counted: those are in flight, not missing. The record is
    incomplete only when the cloud has fewer starts or stops than the chargers ran, or when
    the gateway still holds messages for it (``queued``).
    """
    missing_starts = max(0, stats.sessions_started - cloud_started)
    missing_stops = max(0, stats.sessions_completed - cloud_stopped)
    in_flight = max(0, cloud_started - stats.sessions_started)
    complete = missing_starts == 0 and missing_stops == 0 and not queued
    lines = []
    if complete:
        lines.append("complete: every session the chargers ran reached the cloud")
    else:
        lines.append("INCOMPLETE: the cloud lacks sessions the chargers ran")
    if in_flight:
        lines.append(
            f"{in_flight} start(s) were in flight when the chargers stopped: the cloud has "
            "them, the chargers never heard the answer (not a loss)"
        )
    if missing_starts:
        lines.append(f"{missing_starts} start(s) the chargers ran are not in the cloud")
    if missing_stops:
        lines.append(f"{missing_stops} stop(s) the chargers sent are not in the cloud")
    if queued:
        lines.append(
            f"{queued} message(s) still wait in the gateway's outbox"
            + ("" if drained else f" after {DRAIN_TIMEOUT_S:.0f} s of draining")
            + ": delivered at its next start"
        )
    return Verdict(complete, tuple(lines))


# ------------------------------------------------------------------------------ output


class Display:
    """Where the summary goes: a table redrawn in place on a terminal, else short lines."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self._drawn = 0

    def table(self, lines: Sequence[str]) -> None:
        """Redraw the status table in place (terminal only)."""
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F")  # back to the table's first line
        for line in lines:
            self.out.write("\x1b[2K" + line + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def freeze(self) -> None:
        """Leave the table as it is on screen: what follows is written below it."""
        self._drawn = 0

    def line(self, text: str) -> None:
        """One line that stays (a status line, a scripted event, the summary)."""
        if self.live and self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")  # the table is drawn again below
            self._drawn = 0
        self.out.write(text + "\n")
        self.out.flush()


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def phases(values: Sequence[float | None] | None) -> str:
    """The highest phase of a per-phase triple, or "--"."""
    known = [v for v in values or () if v is not None]
    return f"{max(known):.0f} A" if known else "--"


@dataclass(slots=True)
class Status:
    """What the summary says, taken from the running parts."""

    elapsed: float
    duration: float | None
    chargers: int
    stats: FleetStats
    site: SiteLive
    cloud_up: bool
    cloud_messages: int
    now: str
    next: str

    def header(self) -> str:
        span = "until Ctrl-C" if self.duration is None else f"of {clock(self.duration)}"
        return f"edgegw demo: {self.chargers} simulated chargers, {clock(self.elapsed)} {span}"

    def rows(self) -> list[str]:
        site, stats = self.site, self.stats
        limit = "none" if site.limit_a is None else f"{min(site.limit_a):.0f} A"
        capping = site.mode or "off"
        cloud = "ONLINE" if self.cloud_up else "DOWN (outage)"
        queued = "--" if site.sync_queued is None else str(site.sync_queued)
        return [
            self.header(),
            f"  chargers  {site.chargers_connected}/{site.chargers_total} online, "
            f"{site.sessions_active} charging now",
            f"  sessions  {stats.sessions_started} started, {stats.sessions_refused} cards "
            f"refused, {stats.sessions_completed} completed",
            f"  cloud     {cloud}, {self.cloud_messages} messages received, "
            f"{queued} waiting in the gateway's outbox",
            f"  site      limit {limit}, drawn {phases(site.current_a)} building + "
            f"{phases(site.ev_current_a)} cars, load capping {capping}",
            f"  now       {self.now}",
            f"  next      {self.next}",
        ]

    def short(self) -> str:
        site, stats = self.site, self.stats
        queued = "--" if site.sync_queued is None else str(site.sync_queued)
        return (
            f"t={self.elapsed:4.0f}s  chargers {site.chargers_connected}/{site.chargers_total}, "
            f"charging {site.sessions_active} | sessions started {stats.sessions_started}, "
            f"refused {stats.sessions_refused}, completed {stats.sessions_completed} | cloud "
            f"{'online' if self.cloud_up else 'DOWN'}, outbox {queued} | cars "
            f"{phases(site.ev_current_a)}, building {phases(site.current_a)}, capping "
            f"{site.mode or 'off'}"
        )


# ------------------------------------------------------------------------------ running


def _config_text(
    folder: Path,
    port: int,
    cloud_url: str,
    chargers: dict[str, str],
    *,
    meter_port: int,
    limit_a: float,
) -> str:
    db = folder / "edgegw.db"
    lines = [
        "# Generated by `edgegw demo`.",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        # Every simulated charger connects from this machine: lift the per-address limits.
        f"max_connections_per_address = {len(chargers) + 8}",
        f"max_pending_per_address = {len(chargers) + 8}",
        "",
        "[cloud]",
        f'url = "{cloud_url}"',
        "",
        "[store]",
        f'path = "{db}"',
        "",
        "[control]",
        f'socket = "{folder / "edgegw.sock"}"',
        'group = ""',
        "",
        "[site]  # load capping on the simulated site meter",
        f"limit_a = {limit_a:g}",
        'meter_role = "non_ev"   # the meter measures the building, not the chargers',
        "",
        "[buses.main]",
        'transport = "tcp"',
        'host = "127.0.0.1"',
        f"port = {meter_port}",
        "",
        "[[meters]]",
        'name = "grid"',
        'profile = "eastron-sdm630"',
    ]
    for charger_id, password_hash in chargers.items():
        lines += ["", "[[chargers]]", f'id = "{charger_id}"', f'password_hash = "{password_hash}"']
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def log_to_file(path: Path, *, keep_errors: bool) -> Iterator[None]:
    """Send the log to ``path``; the console keeps errors only (``keep_errors``) or nothing
    (the table is drawn there). The handlers are put back afterwards."""
    root = logging.getLogger()
    levels = [(h, h.level) for h in root.handlers]
    for handler, _ in levels:
        handler.setLevel(logging.ERROR if keep_errors else logging.CRITICAL + 1)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root.addHandler(file_handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(file_handler)
        file_handler.close()
        for handler, level in levels:
            handler.setLevel(level)


async def outbox_queued(gateway: Gateway) -> int | None:
    """Messages the gateway's outbox holds for the cloud now (None: no store)."""
    store = gateway.store
    if store is None:
        return None
    return sum(row.queued for row in await store.outbox.status())


async def drain(gateway: Gateway, timeout: float = DRAIN_TIMEOUT_S) -> tuple[int | None, bool]:
    """Let the gateway deliver what it still owes the cloud (the chargers have stopped):
    ``(messages still queued, whether it all went)``.

    The outbox is read from the store each time the live picture changes (a delivery, a
    charger's session closing), and at least every :data:`DRAIN_CHECK_S` seconds.
    """
    changed = asyncio.Event()

    def on_change(change: LiveChange) -> None:
        changed.set()

    live = gateway.live
    unsubscribe = live.on_change(on_change) if live is not None else None
    left = await outbox_queued(gateway)
    try:
        async with asyncio.timeout(timeout):
            while left:
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRAIN_CHECK_S):
                        await changed.wait()
                left = await outbox_queued(gateway)
    except TimeoutError:
        return left, False
    finally:
        if unsubscribe is not None:
            unsubscribe()
    return left, True


async def run_demo(
    *,
    chargers: int,
    duration: float | None,
    port: int = 0,
    session_seconds: float = 8.0,
    real_cloud: bool = False,
    cloud_stall: float = 0.0,
    out: TextIO | None = None,
    live_table: bool | None = None,
) -> bool:
    """Run until ``duration`` elapses or Ctrl-C; True if the cloud's record is complete.

    ``real_cloud`` makes the simulated cloud behave like a real CSMS (one CALL per charger at a
    time, an overlapping one refused; ``ConcurrentTx`` for a second start of a card);
    ``cloud_stall`` > 0 makes it stall that many seconds every :data:`STALL_EVERY` seconds
    (then it answers all the same), as a busy CSMS does. ``out`` (default stdout) gets the
    summary; ``live_table`` (default: ``out`` is a terminal) redraws it in place.
    """
    out = out or sys.stdout
    if live_table is None:
        live_table = out.isatty()
    display = Display(out, live=live_table)
    folder = Path(tempfile.mkdtemp(prefix="edgegw-demo-"))
    with log_to_file(folder / "edgegw.log", keep_errors=not live_table):
        return await _run(
            display,
            folder,
            chargers=chargers,
            duration=duration,
            port=port,
            session_seconds=session_seconds,
            real_cloud=real_cloud,
            cloud_stall=cloud_stall,
        )


async def _run(
    display: Display,
    folder: Path,
    *,
    chargers: int,
    duration: float | None,
    port: int,
    session_seconds: float,
    real_cloud: bool,
    cloud_stall: float,
) -> bool:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ids = [f"DEMO-{i:02d}" for i in range(1, chargers + 1)]
    passwords = {cid: f"demo-password-{cid.lower()}" for cid in ids}
    hashes = {cid: hash_password(pw, log2_n=10) for cid, pw in passwords.items()}
    script = script_for(duration)
    limit = site_limit_a(chargers)
    stall = Stall()
    cloud = SimCloud(
        accepted_tags=ACCEPTED_TAGS,
        blocked_tags={BLOCKED_TAG},
        history=50_000,
        serial=real_cloud,
        concurrent_tx=real_cloud,
        delay_answers=stall,
    )
    meter = SimMeter("eastron-sdm630")
    await meter.start()
    meter.set_currents(BUILDING_A, BUILDING_A, BUILDING_A)
    await cloud.start()
    config_path = folder / "edgegw.toml"
    config_path.write_text(
        _config_text(folder, port, cloud.url, hashes, meter_port=meter.port, limit_a=limit),
        encoding="utf-8",
    )
    log.info("simulated cloud CSMS at %s; gateway configuration %s", cloud.url, config_path)
    gateway = Gateway(load_config(config_path))
    gateway_task = asyncio.create_task(  # noqa: TID251 (the demo's own top level)
        gateway.run(install_signal_handlers=False), name="demo/gateway"
    )
    await gateway.started.wait()
    assert gateway.server is not None and gateway.live is not None
    live = gateway.live
    url = f"ws://127.0.0.1:{gateway.server.port}/ocpp"
    display.line(
        f"edgegw demo: {chargers} simulated chargers -> the gateway at {url} -> a simulated "
        f"cloud; load capping at {limit:g} A on a simulated site meter."
    )
    display.line(f"  watch it live:  edgegw tui -c {config_path}   (in another terminal)")
    display.line(f"  the gateway's log:  {folder / 'edgegw.log'}")
    if script is None:
        display.line(
            f"  (a run under {MIN_SCRIPTED_S:.0f} s leaves out the cloud outage and the "
            "load-cap event)"
        )
    else:
        display.line(
            f"  scripted: a cloud outage at {clock(script.outage_at)} for "
            f"{script.outage_s:.0f} s, a load-cap event at {clock(script.load_at)} for "
            f"{script.load_s:.0f} s"
        )
    fleet = SimFleet(
        url,
        ids,
        tags=[*ACCEPTED_TAGS, UNKNOWN_TAG, BLOCKED_TAG],
        password_for=passwords,
        session_seconds=session_seconds,
        meter_interval=max(session_seconds / 4, 0.5),
        heartbeat_interval=30,
        seed="demo",
    )
    started = time.monotonic()
    next_stall = started + STALL_EVERY
    next_line = started + LINE_EVERY
    phase = {"outage": "before", "load": "before"}
    now_text = "chargers charging, the cloud online"
    await fleet.start()

    def status() -> Status:
        elapsed = time.monotonic() - started
        return Status(
            elapsed=elapsed,
            duration=duration,
            chargers=chargers,
            stats=fleet.stats,
            site=live.site(),
            cloud_up=cloud.running,
            cloud_messages=sum(1 for r in cloud.records if r.direction == "in"),
            now=now_text,
            next=_next_text(script, phase, elapsed),
        )

    try:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            remaining = None if duration is None else duration - elapsed
            if remaining is not None and remaining <= 0:
                break
            if script is not None:
                event = await _play(script, phase, elapsed, cloud=cloud, meter=meter, limit=limit)
                if event is not None:
                    now_text = event
                    display.line(f"t={elapsed:4.0f}s  {event}")
                    # A status line soon after, once the site has answered to the event.
                    next_line = min(next_line, time.monotonic() + AFTER_EVENT_S)
            if cloud_stall > 0 and time.monotonic() >= next_stall:
                log.info("the simulated cloud stalls for %.0f s", cloud_stall)
                stall.begin(cloud_stall)
                next_stall += STALL_EVERY
            if display.live:
                display.table(status().rows())
            elif time.monotonic() >= next_line:
                display.line(status().short())
                next_line = time.monotonic() + LINE_EVERY
            wait = REDRAW_EVERY if remaining is None else min(REDRAW_EVERY, remaining)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stop.wait()
    finally:
        log.info("stopping the demo")
        if not cloud.running:
            await cloud.start()  # stopped during an outage: the gateway must catch up
        meter.set_currents(BUILDING_A, BUILDING_A, BUILDING_A)
        await fleet.stop()
        display.freeze()
        display.line("Stopping: the chargers are off; the gateway delivers what it still owes...")
        queued, drained = await drain(gateway)
        gateway.shutdown()
        await gateway_task
        await cloud.stop()
        await meter.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return _summary(
        display,
        cloud,
        fleet,
        ids=ids,
        folder=folder,
        config_path=config_path,
        queued=queued,
        drained=drained,
    )


async def _play(
    script: Script,
    phase: dict[str, str],
    elapsed: float,
    *,
    cloud: SimCloud,
    meter: SimMeter,
    limit: float,
) -> str | None:
    """Start or end a scripted event that is due; its description, or None."""
    if phase["outage"] == "before" and elapsed >= script.outage_at:
        phase["outage"] = "on"
        log.info("demo: cloud outage for %.0f s", script.outage_s)
        await cloud.stop()
        return (
            f"cloud outage: the simulated cloud is down for {script.outage_s:.0f} s; the "
            "gateway answers the chargers itself and keeps their messages"
        )
    if phase["outage"] == "on" and elapsed >= script.outage_at + script.outage_s:
        phase["outage"] = "after"
        await cloud.start()
        return "cloud back: the gateway reconnects and delivers what it kept, in order"
    if phase["load"] == "before" and elapsed >= script.load_at:
        phase["load"] = "on"
        load = event_load_a(limit)
        log.info("demo: building load %.0f A for %.0f s", load, script.load_s)
        meter.set_currents(load, load, load)
        return (
            f"load-cap event: the building draws {load:.0f} A of the {limit:g} A fuse for "
            f"{script.load_s:.0f} s; load capping cuts the cars"
        )
    if phase["load"] == "on" and elapsed >= script.load_at + script.load_s:
        phase["load"] = "after"
        meter.set_currents(BUILDING_A, BUILDING_A, BUILDING_A)
        return "load-cap event over: the building is back to its usual load; cars ramp up"
    return None


def _next_text(script: Script | None, phase: dict[str, str], elapsed: float) -> str:
    if script is None:
        return "nothing scripted (short run)"
    if phase["outage"] == "before":
        return f"cloud outage in {script.outage_at - elapsed:.0f} s"
    if phase["outage"] == "on":
        return f"cloud back in {script.outage_at + script.outage_s - elapsed:.0f} s"
    if phase["load"] == "before":
        return f"load-cap event in {script.load_at - elapsed:.0f} s"
    if phase["load"] == "on":
        return f"load-cap event ends in {script.load_at + script.load_s - elapsed:.0f} s"
    return "nothing more scripted: chargers keep charging"


def _summary(
    display: Display,
    cloud: SimCloud,
    fleet: SimFleet,
    *,
    ids: list[str],
    folder: Path,
    config_path: Path,
    queued: int | None,
    drained: bool,
) -> bool:
    stats = fleet.stats
    started = [t for (cid, _), t in cloud.transactions.items() if cid in ids]
    stopped = [t for t in started if t.stopped]
    verdict = judge(stats, len(started), len(stopped), queued=queued, drained=drained)
    lines = [
        "",
        "edgegw demo summary",
        f"  chargers:                {len(ids)}",
        f"  frames sent by chargers: {stats.messages_sent}",
        f"  sessions started:        {stats.sessions_started} (refused cards: "
        f"{stats.sessions_refused})",
        f"  sessions completed:      {stats.sessions_completed}",
        f"  cloud transactions:      {len(started)} started, {len(stopped)} stopped",
    ]
    if cloud.serial or cloud.held:
        lines.append(
            f"  slow cloud:              {len(cloud.held)} answers delayed, "
            f"{len(cloud.refused)} overlapping calls refused"
        )
    lines.append(f"  cloud record:            {verdict.lines[0]}")
    lines += [f"                           {more}" for more in verdict.lines[1:]]
    config = f"-c {config_path}"
    lines += [
        "",
        f"Look further (the demo's files stay in {folder}; remove it when done):",
        f"  edgegw sessions list {config}   the sessions the gateway recorded",
        f"  edgegw events {config}          what happened, in words",
        f"  less {folder / 'edgegw.log'}",
        "While a demo runs (`edgegw demo --duration 0` runs until Ctrl-C), in another terminal:",
        "  edgegw tui -c <the configuration it prints>   the caretaker's screen",
        "  edgegw energy decisions -c <that configuration>   load capping's decisions",
    ]
    for line in lines:
        display.line(line)
    return verdict.complete
