"""Message log memory: what a full ring of a large site's frames costs, and per-frame time.

Run:  .venv/bin/python tests/bench/messagelog_memory.py [--frames 20000] [--chargers 2000]

Fills a :class:`~edgegw.store.messagelog.MessageLog` with the defaults (20,000 frames, 16 MiB)
the way a busy site does (MeterValues calls and their empty answers, 2 connectors per
charger) and prints the memory it holds (tracemalloc: what Python allocated for it, and the
log's own estimate), the microseconds one append costs (sealing and making the frame's text
included) and how long ``newest(limit=100)`` and a whole ``oldest_first`` take. A second line
times what the gateway pays per logged frame with the frames made beforehand (as the wire
makes them): redaction and append (``Store.log_frame``'s work), and of it the sealing of blocks
per frame; CPU time, best of five, so a busy box disturbs it less. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable

from edgegw.security.redact import redact_frame
from edgegw.store.messagelog import BLOCK_FRAMES, MessageLog, _Block


def meter_values(i: int, chargers: int) -> str:
    sampled = [
        {"value": str(1000 + i * 7), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        *({"value": "16.0", "measurand": "Current.Import", "phase": p, "unit": "A"} for p in "123"),
    ]
    payload = {
        "connectorId": 1 + i % 2,
        "transactionId": i % chargers,
        "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": sampled}],
    }
    return json.dumps([2, f"m{i}", "MeterValues", payload])


def fill(size: int, chargers: int) -> MessageLog:
    """A log of ``size`` frames after twice as many appends (the first half evicted)."""
    log = MessageLog(size=size, max_bytes=16 * 2**20, clock=time.time)
    for i in range(2 * size):
        text = meter_values(i, chargers) if i % 2 == 0 else f'[3,"m{i - 1}",{{}}]'
        log.append(f"CAP{i % chargers:05d}", "charger>" if i % 2 == 0 else "cloud>", text)
    return log


def per_frame(size: int, chargers: int) -> tuple[float, float]:
    """CPU µs per logged frame (redact + append) and per frame sealed, frames made beforehand."""
    frames = [
        (
            f"CAP{i % chargers:05d}",
            "charger>" if i % 2 == 0 else "cloud>",
            meter_values(i, chargers) if i % 2 == 0 else f'[3,"m{i - 1}",{{}}]',
        )
        for i in range(2 * size)
    ]

    def log_all() -> None:
        log = MessageLog(size=size, max_bytes=16 * 2**20, clock=time.time)
        for charger, direction, frame in frames:
            log.append(charger, direction, redact_frame(frame))

    def seal_all() -> None:
        for start in range(0, len(frames), BLOCK_FRAMES):
            chunk = frames[start : start + BLOCK_FRAMES]
            _Block([(start + j, 1.0, c, d, f) for j, (c, d, f) in enumerate(chunk)])

    def best(run: Callable[[], None]) -> float:
        spent = []
        for _ in range(5):
            started = time.process_time()
            run()
            spent.append(time.process_time() - started)
        return min(spent) / len(frames) * 1e6

    return best(log_all), best(seal_all)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=20_000, help="ring size")
    parser.add_argument("--chargers", type=int, default=2_000)
    args = parser.parse_args()
    log = fill(args.frames, args.chargers)  # timed without tracemalloc: it slows allocations
    started = time.perf_counter()
    log = fill(args.frames, args.chargers)
    per_append = (time.perf_counter() - started) / (2 * args.frames) * 1e6
    del log
    tracemalloc.start()  # the frames are made here, as the wire makes them: the log keeps them
    log = fill(args.frames, args.chargers)
    held, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    started = time.perf_counter()
    for _ in range(20):
        log.newest(limit=100)
    newest = (time.perf_counter() - started) / 20 * 1e3
    started = time.perf_counter()
    count = sum(1 for _ in log.oldest_first())
    whole = (time.perf_counter() - started) * 1e3
    print(
        f"{len(log)} frames kept of {2 * args.frames} ({args.chargers} chargers): "
        f"{held / 2**20:.2f} MiB allocated, {log.bytes / 2**20:.2f} MiB estimated; "
        f"append {per_append:.2f} µs; newest(100) {newest:.2f} ms; all {count} in {whole:.0f} ms"
    )
    logged, sealed = per_frame(args.frames, args.chargers)
    print(
        f"per logged frame (MeterValues and its answer, made beforehand; CPU, best of 5): "
        f"redact + append {logged:.2f} µs, of which sealing {sealed:.2f} µs"
    )


if __name__ == "__main__":
    main()
