"""The requests a meter is read with: its blocks, and the splits remembered when a device
refuses a block (one read path for the daemon, ``meter probe`` and ``doctor``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from edgegw.energy.modbuserrors import _EXCEPTION_NAMES, ModbusError
from edgegw.energy.registers import BlockRead, MeterProfile, Quantity, plan_reads, split_block

SPLIT_CODES: Final = frozenset({2, 3})
"""Exceptions that make a block read again as two smaller ones: 3 (illegal data value, the
request is longer than the meter takes) and 2 (illegal data address, the request spans a
register the meter does not define)."""


def describe_block(block: BlockRead) -> str:
    """``FC4 0x0000+76``: a request, for messages."""
    return f"FC{block.function_code} {block.address:#06x}+{block.count}"


@dataclass(frozen=True, slots=True)
class Split:
    """A block the meter refused, and the two requests that read it from then on."""

    block: BlockRead
    code: int
    halves: tuple[BlockRead, BlockRead]

    def __str__(self) -> str:
        name = _EXCEPTION_NAMES.get(self.code, "unknown exception code")
        parts = " and ".join(describe_block(half) for half in self.halves)
        return (
            f"{describe_block(self.block)} refused with exception {self.code} ({name}); "
            f"read as {parts} from now on"
        )


class ReadPlan:
    """The requests that read one meter: :func:`plan_reads`, then what the meter taught.

    The daemon's poller and the installer's probe (``edgegw meter probe``, ``doctor``) both
    read through a plan with :meth:`ModbusBus.read_plan`, so they send the same requests and
    fail on the same meters. A block the meter refuses with exception 2 or 3 is split in two
    (:func:`~edgegw.energy.registers.split_block`) and read again at once; the plan keeps the
    split, so later polls send the smaller requests straight away. A block of one value that
    is refused cannot be split: that read fails.
    """

    def __init__(self, profile: MeterProfile, quantities: Iterable[Quantity] | None = None) -> None:
        self.profile = profile
        self._blocks: list[BlockRead] = plan_reads(profile, quantities)
        self.splits: list[Split] = []
        """Every split so far, oldest first."""

    @property
    def blocks(self) -> tuple[BlockRead, ...]:
        """The requests one read sends now, in order."""
        return tuple(self._blocks)

    def split(self, block: BlockRead, code: int) -> Split | None:
        """Replace ``block``, refused with exception ``code``, by its two halves; ``None`` if
        the code is not one a smaller request can cure or the block holds a single value."""
        if code not in SPLIT_CODES or block not in self._blocks:
            return None
        halves = split_block(self.profile, block)
        if halves is None:
            return None
        index = self._blocks.index(block)
        self._blocks[index : index + 1] = halves
        split = Split(block, code, halves)
        self.splits.append(split)
        return split

    def advice(self) -> str | None:
        """What to put in the profile so the meter needs no split (None: nothing learnt)."""
        if not self.splits:
            return None
        if any(split.code == 3 for split in self.splits):
            largest = max(block.count for block in self._blocks)
            return (
                f"this meter takes fewer registers per request than profile "
                f"{self.profile.id!r} allows (max_read_registers = "
                f"{self.profile.modbus.max_read_registers}); max_read_registers = {largest} "
                "is known to work"
            )
        return (
            f"this meter refuses registers that profile {self.profile.id!r} reads across "
            "(exception 2); max_gap = 0 reads only the listed registers"
        )


@dataclass(frozen=True, slots=True)
class PlanRead:
    """What one pass over a :class:`ReadPlan` got: words per block (``{(fc, address):
    words}``, the form :func:`decode` expects), the blocks that failed (only with
    ``keep_going``), and the splits made during this pass."""

    words: dict[tuple[int, int], list[int]]
    failures: tuple[tuple[BlockRead, ModbusError], ...] = ()
    splits: tuple[Split, ...] = ()
