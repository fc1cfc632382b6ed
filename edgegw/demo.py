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

The site and its script are in :mod:`edgegw.demo_site`, what is shown and the verdict in
:mod:`edgegw.demo_status`; every name is importable from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Protocol, TextIO

from edgegw.auth.passwords import hash_password
from edgegw.config import load_config
from edgegw.daemon import Gateway
from edgegw.demo_carpark import (
    BOARD_BASE_A,
    CarPark,
    CarParkError,
    FuseWatch,
    carpark_config_text,
    load_carpark,
)
from edgegw.demo_site import (
    ACCEPTED_TAGS,
    BLOCKED_TAG,
    BUILDING_A,
    CAR_A,
    DEFAULT_DURATION_S,
    DRAIN_TIMEOUT_S,
    MIN_SCRIPTED_S,
    STALL_EVERY,
    UNKNOWN_TAG,
    Script,
    _config_text,
    event_load_a,
    script_for,
    site_limit_a,
)
from edgegw.demo_status import (
    AFTER_EVENT_S,
    LINE_EVERY,
    REDRAW_EVERY,
    Display,
    Status,
    Verdict,
    _next_text,
    _summary,
    clock,
    judge,
    phases,
)
from edgegw.demo_v201 import Driver201, MixedCloud, judge201
from edgegw.livestate import LiveChange
from edgegw.ocpp.versions import OCPP201, site_versions
from edgegw.sim.cloud import SimCloud, Stall
from edgegw.sim.fleet import SimFleet
from edgegw.sim.meter import SimMeter

log = logging.getLogger("edgegw.demo")


DRAIN_CHECK_S: Final = 0.5


class Outage(Protocol):
    """What a cloud outage stops and starts (the SimCloud, or the mixed cloud in front of it)."""

    @property
    def running(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def stations_201(chargers: int, wanted: int | None) -> int:
    """How many of the demo's chargers speak OCPP 2.0.1: ``wanted`` (default a third), none
    when the gateway does not take 2.0.1 chargers on a site that caps load."""
    if OCPP201 not in site_versions(cloud=True, capped=True)[0]:
        return 0
    count = chargers // 3 if wanted is None else wanted
    return max(0, min(chargers - 1, count))


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
    site: Path | None = None,
    v201: int | None = None,
) -> bool:
    """Run until ``duration`` elapses or Ctrl-C; True if the cloud's record is complete.

    ``real_cloud`` makes the simulated cloud behave like a real CSMS (one CALL per charger at a
    time, an overlapping one refused; ``ConcurrentTx`` for a second start of a card);
    ``cloud_stall`` > 0 makes it stall that many seconds every :data:`STALL_EVERY` seconds
    (then it answers all the same), as a busy CSMS does. ``out`` (default stdout) gets the
    summary; ``live_table`` (default: ``out`` is a terminal) redraws it in place. ``site``
    plays a car park of one's own (:mod:`edgegw.demo_carpark`; ``chargers`` is then its own);
    raises :class:`~edgegw.demo_carpark.CarParkError` when it cannot be played. ``v201`` of
    the chargers speak OCPP 2.0.1 (default: a third, when the gateway takes 2.0.1 chargers on
    a site that caps load; :mod:`edgegw.demo_v201`).
    """
    park = None if site is None else load_carpark(site)
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
            park=park,
            v201=v201,
        )


async def _start_meters(park: CarPark | None) -> tuple[SimMeter, dict[str, SimMeter]]:
    """The grid's simulated meter, and every meter by name (a car park's boards' too)."""
    if park is None:
        grid = SimMeter("eastron-sdm630")
        await grid.start()
        grid.set_currents(BUILDING_A, BUILDING_A, BUILDING_A)
        return grid, {"grid": grid}
    meters: dict[str, SimMeter] = {}
    for spec in park.meters:
        sim = meters[spec.name] = SimMeter(spec.profile, unit_id=spec.unit_id)
        await sim.start()
        base = BUILDING_A if spec.role == "site" else BOARD_BASE_A
        sim.set_currents(base, base, base)
    grid = next(meters[m.name] for m in park.meters if m.role == "site")
    return grid, meters


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
    park: CarPark | None = None,
    v201: int | None = None,
) -> bool:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ids = (
        [f"DEMO-{i:02d}" for i in range(1, chargers + 1)]
        if park is None
        else list(park.charger_ids)
    )
    chargers = len(ids)
    count201 = stations_201(chargers, v201)
    ids201, ids = ids[len(ids) - count201 :], ids[: len(ids) - count201]
    passwords = {cid: f"demo-password-{cid.lower()}" for cid in [*ids, *ids201]}
    hashes = {cid: hash_password(pw, log2_n=10) for cid, pw in passwords.items()}
    script = script_for(duration)
    limit = site_limit_a(chargers) if park is None else park.limit_a
    stall = Stall()
    cloud = SimCloud(
        accepted_tags=ACCEPTED_TAGS,
        blocked_tags={BLOCKED_TAG},
        history=50_000,
        serial=real_cloud,
        concurrent_tx=real_cloud,
        delay_answers=stall,
    )
    meter, meters = await _start_meters(park)
    front = MixedCloud(cloud, ACCEPTED_TAGS, [BLOCKED_TAG]) if ids201 else None
    outage: Outage = front or cloud
    await outage.start()
    cloud_url = front.url if front is not None else cloud.url
    config_path = folder / "edgegw.toml"
    config_path.write_text(
        _config_text(folder, port, cloud_url, hashes, meter_port=meter.port, limit_a=limit)
        if park is None
        else carpark_config_text(
            park,
            folder,
            port=port,
            cloud_url=cloud_url,
            hashes=hashes,
            meter_ports={n: m.port for n, m in meters.items()},
        ),
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
    if park is None:
        display.line(
            f"edgegw demo: {chargers} simulated chargers -> the gateway at {url} -> a "
            f"simulated cloud; load capping at {limit:g} A on a simulated site meter."
        )
    else:
        display.line(
            f"edgegw demo on {park.path}: {chargers} simulated chargers on "
            f"{park.circuits} board(s) below a {limit:g} A main fuse, {len(meters)} "
            f"simulated meters -> the gateway at {url} -> a simulated cloud."
        )
    watch = FuseWatch()
    if ids201:
        display.line(f"  OCPP 2.0.1 stations beside the 1.6 chargers: {', '.join(ids201)}")
    elif v201:
        display.line("  (no 2.0.1 stations: this gateway does not take them on a capped site)")
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
    rng = random.Random("demo-201")
    drivers = [
        Driver201(
            cid,
            url,
            password=passwords[cid],
            tags=[*ACCEPTED_TAGS, UNKNOWN_TAG],
            session_seconds=session_seconds,
            meter_interval=max(session_seconds / 4, 0.5),
            rng=rng,
        )
        for cid in ids201
    ]
    started = time.monotonic()
    next_stall = started + STALL_EVERY
    next_line = started + LINE_EVERY
    phase = {"outage": "before", "load": "before"}
    now_text = "chargers charging, the cloud online"
    await fleet.start()
    for driver in drivers:
        driver.start()

    def status() -> Status:
        elapsed = time.monotonic() - started
        return Status(
            elapsed=elapsed,
            duration=duration,
            chargers=chargers,
            stats=fleet.stats,
            site=live.site(),
            cloud_up=outage.running,
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
                event = await _play(script, phase, elapsed, cloud=outage, meter=meter, limit=limit)
                if event is not None:
                    now_text = event
                    display.line(f"t={elapsed:4.0f}s  {event}")
                    # A status line soon after, once the site has answered to the event.
                    next_line = min(next_line, time.monotonic() + AFTER_EVENT_S)
            if cloud_stall > 0 and time.monotonic() >= next_stall:
                log.info("the simulated cloud stalls for %.0f s", cloud_stall)
                stall.begin(cloud_stall)
                next_stall += STALL_EVERY
            watch.look(live.snapshot())
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
        if not outage.running:
            await outage.start()  # stopped during an outage: the gateway must catch up
        meter.set_currents(BUILDING_A, BUILDING_A, BUILDING_A)
        await fleet.stop()
        for driver in drivers:
            await driver.stop()
        display.freeze()
        display.line("Stopping: the chargers are off; the gateway delivers what it still owes...")
        queued, drained = await drain(gateway)
        gateway.shutdown()
        await gateway_task
        await outage.stop()
        for sim in meters.values():
            await sim.stop()
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
        fuses=watch.lines() if park is not None else None,
        v201=judge201(drivers, front) if front is not None else None,
        stations=len(drivers),
    )


async def _play(
    script: Script,
    phase: dict[str, str],
    elapsed: float,
    *,
    cloud: Outage,
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


__all__ = [
    "ACCEPTED_TAGS",
    "AFTER_EVENT_S",
    "BLOCKED_TAG",
    "BUILDING_A",
    "CAR_A",
    "DEFAULT_DURATION_S",
    "DRAIN_CHECK_S",
    "DRAIN_TIMEOUT_S",
    "LINE_EVERY",
    "MIN_SCRIPTED_S",
    "REDRAW_EVERY",
    "STALL_EVERY",
    "UNKNOWN_TAG",
    "CarParkError",
    "Display",
    "Script",
    "Status",
    "Verdict",
    "clock",
    "drain",
    "event_load_a",
    "judge",
    "log_to_file",
    "outbox_queued",
    "phases",
    "run_demo",
    "script_for",
    "site_limit_a",
]
