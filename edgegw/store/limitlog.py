"""What the limits from outside did: each activation of a ``[[limits]]`` source (§14a EnWG ones
among them) and each finished quarter-hour of peak shaving (schema 5).

An activation is written when it starts (``ended_at`` NULL) and closed when it ends, so after
a restart the open ones say which limits were in force: they hold again until their source is
read (:class:`edgegw.energy.external.ExternalLimits`). Rows are kept two years
(:data:`KEEP_S`, a grid operator may ask for the §14a record) and pruned after.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import aiosqlite

from edgegw.store.db import Database

KEEP_S = 2 * 366 * 86_400.0
"""Two years (and a day for each leap year), then pruned."""

SCHEMA_NEEDED = 5

QuarterTuple = tuple[float, float, float, float, float]


class QuarterRow(Protocol):
    """A finished quarter-hour as :mod:`edgegw.energy.peak` gives it."""

    @property
    def start(self) -> float: ...
    @property
    def average_kw(self) -> float: ...
    @property
    def projected_max_kw(self) -> float: ...
    @property
    def limited_s(self) -> float: ...
    @property
    def target_kw(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Activation:
    """One activation of a limit source."""

    id: int
    source: str
    para14a: bool
    node: str
    """``site`` or the circuit's name."""
    started_at: float
    ended_at: float | None
    limit_a: tuple[float, float, float]
    granted_kw: float | None
    """§14a: the power granted to the dimmed chargers."""
    chargers: int | None
    """§14a: the number of controllable chargers it was computed for."""

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "source": self.source,
            "para14a": self.para14a,
            "node": self.node,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "limit_a": list(self.limit_a),
            "granted_kw": self.granted_kw,
            "chargers": self.chargers,
        }


_COLUMNS = (
    "id, source, para14a, node, started_at, ended_at, limit_l1_a, limit_l2_a, limit_l3_a, "
    "granted_kw, chargers"
)


def _activation(row: Sequence[object]) -> Activation:
    (id_, source, para, node, started, ended, l1, l2, l3, kw, n) = row
    return Activation(
        id=int(str(id_)),
        source=str(source),
        para14a=bool(para),
        node=str(node),
        started_at=float(str(started)),
        ended_at=None if ended is None else float(str(ended)),
        limit_a=(float(str(l1)), float(str(l2)), float(str(l3))),
        granted_kw=None if kw is None else float(str(kw)),
        chargers=None if n is None else int(str(n)),
    )


class LimitLog:
    """The activation log and the peak-shaving quarter-hours in the daemon's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def started(
        self,
        source: str,
        *,
        para14a: bool,
        node: str,
        at: float,
        limit_a: tuple[float, float, float],
        granted_kw: float | None,
        chargers: int | None,
    ) -> int:
        """Record an activation that starts now; returns its id."""
        async with self.db.transaction(durable=True) as conn:
            cursor = await conn.execute(
                "INSERT INTO limit_activations (source, para14a, node, started_at, limit_l1_a,"
                " limit_l2_a, limit_l3_a, granted_kw, chargers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (source, int(para14a), node, at, *limit_a, granted_kw, chargers),
            )
            row_id = cursor.lastrowid
        assert row_id is not None
        return int(row_id)

    async def ended(self, activation_id: int, at: float) -> None:
        async with self.db.transaction(durable=True) as conn:
            await conn.execute(
                "UPDATE limit_activations SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                (at, activation_id),
            )

    async def open_activations(self) -> list[Activation]:
        """The activations not ended (in force when the daemon last stopped)."""
        rows = await self.db.conn.execute_fetchall(
            f"SELECT {_COLUMNS} FROM limit_activations WHERE ended_at IS NULL ORDER BY id"  # noqa: S608 (constant columns)
        )
        return [_activation(row) for row in rows]

    async def quarter(self, quarter: QuarterRow) -> None:
        """Keep a finished quarter-hour (``edgegw.energy.peak.QuarterResult`` fits)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO peak_quarters (start, average_kw, projected_max_kw, limited_s,"
                " target_kw) VALUES (?, ?, ?, ?, ?) ON CONFLICT (start) DO UPDATE SET"
                " average_kw = excluded.average_kw, projected_max_kw = excluded.projected_max_kw,"
                " limited_s = excluded.limited_s, target_kw = excluded.target_kw",
                (
                    quarter.start,
                    quarter.average_kw,
                    quarter.projected_max_kw,
                    quarter.limited_s,
                    quarter.target_kw,
                ),
            )

    async def quarters_since(self, since: float) -> list[QuarterTuple]:
        return await quarters_since(self.db.conn, since)

    async def prune(self, now: float) -> int:
        """Drop what ended more than two years ago; returns the rows dropped."""
        cutoff = now - KEEP_S
        async with self.db.transaction() as conn:
            first = await conn.execute(
                "DELETE FROM limit_activations WHERE ended_at IS NOT NULL AND ended_at < ?",
                (cutoff,),
            )
            second = await conn.execute("DELETE FROM peak_quarters WHERE start < ?", (cutoff,))
            return int(first.rowcount or 0) + int(second.rowcount or 0)


async def activations(
    conn: aiosqlite.Connection,
    *,
    para14a_only: bool = False,
    since: float | None = None,
    until: float | None = None,
) -> list[Activation]:
    """Activations (read-only connections too), oldest first; ``since``/``until`` on their start."""
    where = ["1 = 1"]
    args: list[object] = []
    if para14a_only:
        where.append("para14a = 1")
    if since is not None:
        where.append("started_at >= ?")
        args.append(since)
    if until is not None:
        where.append("started_at < ?")
        args.append(until)
    rows = await conn.execute_fetchall(
        f"SELECT {_COLUMNS} FROM limit_activations WHERE {' AND '.join(where)}"  # noqa: S608
        " ORDER BY started_at, id",  # (constant columns and conditions; values are parameters)
        args,
    )
    return [_activation(row) for row in rows]


async def quarters_since(conn: aiosqlite.Connection, since: float) -> list[QuarterTuple]:
    """The quarter-hours kept from ``since`` on: (start, average_kw, projected_max_kw,
    limited_s, target_kw), the fields of ``edgegw.energy.peak.QuarterResult`` in order."""
    rows = await conn.execute_fetchall(
        "SELECT start, average_kw, projected_max_kw, limited_s, target_kw FROM peak_quarters"
        " WHERE start >= ? ORDER BY start",
        (since,),
    )
    return [(float(a), float(b), float(c), float(d), float(e)) for a, b, c, d, e in rows]


CSV_COLUMNS = (
    "source",
    "node",
    "started_at",
    "ended_at",
    "duration_s",
    "granted_kw",
    "chargers",
    "limit_l1_a",
    "limit_l2_a",
    "limit_l3_a",
)


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def activations_csv(rows: Iterable[Activation]) -> str:
    """One CSV row per activation; an activation still in force has no end."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for a in rows:
        duration = "" if a.ended_at is None else f"{a.ended_at - a.started_at:.0f}"
        writer.writerow(
            (
                a.source,
                a.node,
                _iso(a.started_at),
                _iso(a.ended_at),
                duration,
                "" if a.granted_kw is None else f"{a.granted_kw:.3f}",
                "" if a.chargers is None else a.chargers,
                *(f"{x:g}" for x in a.limit_a),
            )
        )
    return out.getvalue()
