"""Card authorisation benchmark: decide() latency and load time with a large card list.

Run:  .venv/bin/python tests/bench/authorize.py --cards 100000 --lookups 200000

Builds a database with ``--cards`` installer cards (4- and 7-byte UIDs, imported from CSV as an
installer would) and a cloud list of ``--cloud`` entries, reopens it the way the daemon does
(load + index), then times :meth:`Authorizer.decide` for tags presented in several charger
formats (canonical hex, reversed hex, decimal, under a fixed format and under ``auto``), for
cloud-list tags, cached tags and unknown tags. Printed: import and load times, the memory the
loaded authorizer holds (resident set growth), and p50/p99/max per kind of lookup. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import platform
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edgegw.auth.authorizer import Authorizer
from edgegw.auth.idtags import CardId, IdTagFormat, render
from edgegw.config import AuthConfig
from edgegw.store.db import Database

F = IdTagFormat


def make_cards(n: int, rng: random.Random, *, size: int | None = None) -> list[CardId]:
    """``n`` distinct realistic UIDs: 60 % 7-byte (NXP), 40 % 4-byte, unless ``size`` is set."""
    seen: set[bytes] = set()
    out: list[CardId] = []
    while len(out) < n:
        length = size or (7 if rng.random() < 0.6 else 4)
        head = rng.randrange(0x10, 0x80) if length == 4 else 0x04
        uid = bytes([head, *(rng.randrange(256) for _ in range(length - 1))])
        if uid in seen or (length == 7 and not any(uid[-3:])):
            continue
        seen.add(uid)
        out.append(CardId.from_uid(uid))
    return out


def rss_mb() -> float:
    """Resident memory now (Linux), in MB."""
    with Path("/proc/self/statm").open() as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[int(len(ordered) * 0.99)]
    return (
        f"p50 {p50 * 1e6:7.1f} µs   p99 {p99 * 1e6:7.1f} µs   max {ordered[-1] * 1e6:8.1f} µs   "
        f"mean {statistics.fmean(ordered) * 1e6:6.1f} µs"
    )


def timed(
    auth: Authorizer,
    tags: list[str],
    fmt: IdTagFormat,
    expect: Callable[[str], bool],
) -> list[float]:
    samples: list[float] = []
    clock = time.perf_counter
    for tag in tags:
        start = clock()
        decision = auth.decide("CP1", tag, fmt=fmt)
        samples.append(clock() - start)
        if not expect(decision.status.value):
            raise AssertionError(f"{tag!r} under {fmt.value}: {decision.reason}")
    return samples


def build_database(
    path: Path,
    installer: list[CardId],
    cloud: list[CardId],
    cached: list[CardId],
    config: AuthConfig,
) -> tuple[float, float]:
    """Fill the database as an installer and a cloud would; returns (import s, cloud list s)."""
    return asyncio.run(_build(path, installer, cloud, cached, config))


async def _build(
    path: Path,
    installer: list[CardId],
    cloud: list[CardId],
    cached: list[CardId],
    config: AuthConfig,
) -> tuple[float, float]:
    db = await Database.open(path)
    auth = await Authorizer.open(db, config)
    try:
        csv_text = "id,owner\n" + "".join(
            f"{c.canonical},owner {i}\n" for i, c in enumerate(installer)
        )
        start = time.perf_counter()
        await auth.import_csv(csv_text)
        imported = time.perf_counter() - start
        start = time.perf_counter()
        await auth.send_local_list(
            {
                "listVersion": 1,
                "updateType": "Full",
                "localAuthorizationList": [
                    {"idTag": c.canonical, "idTagInfo": {"status": "Accepted"}} for c in cloud
                ],
            }
        )
        cloud_time = time.perf_counter() - start
        for card in cached:
            await auth.learn(card.canonical, {"status": "Accepted"})
    finally:
        await auth.close()
        await db.close()
    return imported, cloud_time


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--cloud", type=int, default=10_000)
    parser.add_argument("--cached", type=int, default=5_000)
    parser.add_argument("--lookups", type=int, default=200_000, help="per kind of lookup")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(
        f"edgegw authorize benchmark: {args.cards} installer cards, {args.cloud} cloud entries, "
        f"{args.cached} cached; Python {platform.python_version()} on {platform.machine()}"
    )

    cards = make_cards(args.cards + args.cloud + args.cached, rng)
    installer = cards[: args.cards]
    cloud = cards[args.cards : args.cards + args.cloud]
    cached = cards[args.cards + args.cloud :]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        config = AuthConfig(cache_size=max(args.cached, 1), unknown_cards="reject")
        # The database is built in a child process, so that the memory figure below is what
        # loading costs, not what the build left behind in this one.
        with concurrent.futures.ProcessPoolExecutor(1) as pool:
            build_times = await asyncio.get_running_loop().run_in_executor(
                pool, build_database, path, installer, cloud, cached, config
            )
        imported, cloud_time = build_times
        gc.collect()
        before = rss_mb()
        start = time.perf_counter()
        db = await Database.open(path)
        auth = await Authorizer.open(db, config)
        loaded = time.perf_counter() - start
        gc.collect()
        held = rss_mb() - before
        print(
            f"import {args.cards} cards from CSV: {imported:.2f} s; cloud Full list of "
            f"{args.cloud}: {cloud_time:.2f} s\nreopen (load + index everything): {loaded:.2f} s; "
            f"memory held by the authorizer about {held:.0f} MB"
        )

        def sample(pool: list[CardId], fmt: IdTagFormat) -> list[str]:
            picks = [rng.choice(pool) for _ in range(args.lookups)]
            return [render(c, fmt) for c in picks if fmt is not F.DEC_LE or len(c.uid or b"") <= 7]

        accepted: Callable[[str], bool] = lambda status: status == "Accepted"  # noqa: E731
        refused: Callable[[str], bool] = lambda status: status != "Accepted"  # noqa: E731
        # 7-byte unknowns: a random 4-byte tag would, now and then, be some card's variant
        known = {c.key for c in cards}
        unknown = [
            c.canonical
            for c in make_cards(args.lookups, random.Random(args.seed + 1), size=7)
            if c.key not in known
        ]
        kinds: list[tuple[str, list[str], IdTagFormat, Callable[[str], bool]]] = [
            ("installer, hex, fmt=hex", sample(installer, F.HEX), F.HEX, accepted),
            (
                "installer, reversed, fmt=hex_reversed",
                sample(installer, F.HEX_REVERSED),
                F.HEX_REVERSED,
                accepted,
            ),
            ("installer, decimal, fmt=dec_le", sample(installer, F.DEC_LE), F.DEC_LE, accepted),
            ("installer, hex, fmt=auto", sample(installer, F.HEX), F.AUTO, accepted),
            ("installer, reversed, fmt=auto", sample(installer, F.HEX_REVERSED), F.AUTO, accepted),
            ("installer, decimal, fmt=auto", sample(installer, F.DEC_LE), F.AUTO, accepted),
            ("cloud list, hex, fmt=auto", sample(cloud, F.HEX), F.AUTO, accepted),
            ("cache, hex, fmt=auto", sample(cached, F.HEX), F.AUTO, accepted),
            ("unknown card, fmt=auto", unknown, F.AUTO, refused),
        ]
        gc.collect()  # start timing without the garbage of the setup above
        everything: list[float] = []
        for name, tags, fmt, expect in kinds:
            samples = timed(auth, tags, fmt, expect)
            everything.extend(samples)
            print(f"  {name:40s} {percentiles(samples)}")
        print(f"  {'all lookups':40s} {percentiles(everything)}")
        await auth.close()
        await db.close()


if __name__ == "__main__":
    asyncio.run(main())
