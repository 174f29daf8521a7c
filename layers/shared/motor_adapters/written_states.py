"""The states one execution environment wrote, kept so that a motor's next reading there needs no read.

Kept as encoded bytes (motor_adapters.state_item) with the item's version: nothing the domain does to a
state it was given can change what is kept, and each is about 1 KB. Bounded, least recently written first out.

A copy is only worth starting from if it is usually current. Starting from a stale one costs a failed
conditional write (billed as a write, 5 times a strongly consistent read of a 4 KB item), so the copies are
used only while the share found current stays at or above MIN_FRESH_SHARE (with `R` and `W` the prices of a
read and a write unit, a copy saves `R` when current and costs `W` when stale: break-even at 1 - R / W = 0.8).
That share is measured on every unit of work that had a copy: by its write's outcome, or, while the copies
are not used, by comparing the version read with the one kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

STATE_CACHE_MOTORS = 20_000
"""Motors whose last written state an environment keeps: about 1.2 KB each with the dictionary's share, so
24 MB at most, and as many motors as one Kinesis shard carries at one reading every 20 s."""
MIN_FRESH_SHARE = 0.8
"""Below this share of current copies a read is cheaper than a stale copy's failed write (see above)."""
FRESHNESS_WEIGHT = 1 / 32
"""How much one observation moves the measured share: it follows about the last 32 units of work."""


@dataclass(slots=True)
class _Kept:
    version: int
    encoded: bytes
    handed_out: bool = False
    """Given to a unit of work whose outcome (write or read) has not yet told whether it was current."""


class WrittenStates:
    """The states this environment wrote, by motor, and how often such a copy turns out to be current.

    Thread-safe: a batch's motors are applied on a thread pool (motor_lambda.stream_batch).
    """

    def __init__(self, max_motors: int = STATE_CACHE_MOTORS, *, min_fresh_share: float = MIN_FRESH_SHARE) -> None:
        self._max = max_motors
        self._min_fresh_share = min_fresh_share
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._lock = threading.Lock()
        self.fresh_share = 1.0
        """The measured share of copies found current (starts trusting them)."""

    def __len__(self) -> int:
        return len(self._kept)

    def __contains__(self, motor_id: object) -> bool:
        return motor_id in self._kept

    def copy_of(self, motor_id: str) -> tuple[int, bytes] | None:
        """The motor's kept version and state to start from; None if none is kept or copies are too often stale."""
        with self._lock:
            kept = self._kept.get(motor_id)
            if kept is None or self.fresh_share < self._min_fresh_share:
                return None
            kept.handed_out = True
            return kept.version, kept.encoded

    def written(self, motor_id: str, expected_version: int, version: int, encoded: bytes) -> None:
        """A write conditional on `expected_version` succeeded: keep what it stored."""
        with self._lock:
            kept = self._kept.get(motor_id)
            if kept is not None and kept.handed_out and kept.version == expected_version:
                self._observe(current=True)
            self._put(motor_id, _Kept(version, encoded))

    def conflicted(self, motor_id: str, expected_version: int, stored: tuple[int, bytes] | None) -> None:
        """A write conditional on `expected_version` failed; keep what is stored instead, if it is known."""
        with self._lock:
            kept = self._kept.get(motor_id)
            if kept is not None and kept.handed_out and kept.version == expected_version:
                self._observe(current=False)
            if stored is None:
                self._kept.pop(motor_id, None)
            else:
                self._put(motor_id, _Kept(*stored))

    def read(self, motor_id: str, version: int | None) -> None:
        """The motor's item was read (version None: no item): was the copy kept of it current?"""
        with self._lock:
            kept = self._kept.get(motor_id)
            if kept is not None:
                self._observe(current=kept.version == version)
                kept.handed_out = False

    def forget(self, motor_id: str) -> None:
        with self._lock:
            self._kept.pop(motor_id, None)

    def _put(self, motor_id: str, kept: _Kept) -> None:
        """Keep `kept` as the most recent (the lock held)."""
        if self._max <= 0:
            return
        self._kept[motor_id] = kept
        self._kept.move_to_end(motor_id)
        while len(self._kept) > self._max:
            self._kept.popitem(last=False)

    def _observe(self, *, current: bool) -> None:
        self.fresh_share += ((1.0 if current else 0.0) - self.fresh_share) * FRESHNESS_WEIGHT
