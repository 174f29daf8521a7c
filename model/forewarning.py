"""Which failures an alarm forewarned, and which alarms were false: the one rule training's evaluation and the demo use.

An episode is an alarm from its raise to its clear (None: still up). A failure is forewarned if an alarm was up
at some moment of the `window_ms` before it: an episode raised before the failure and not cleared until less
than `window_ms` before it. Such an episode counts for the failure (two failures close together can share
one); the earliest raise that counts gives the lead time. An episode that counts for no failure is a false
alarm, unless it is still open: given the end of the record (`end_ms`), an episode still up, or cleared less
than `window_ms` before the end, could yet count for a failure after it and is not judged.

Plain Python on epoch milliseconds: model/evaluate.py calls it with the replayed history's times, the local
stack's summary (local/watch.py) with the alarm events' and the simulator's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

WARNING_WINDOW_H = 24.0
"""Calendar hours before a failure in which an alarm that was up forewarned it."""
HOUR_MS = 3_600_000


class Verdict(StrEnum):
    """What an episode turned out to be."""

    FOREWARNED = "forewarned"
    """It counted for at least one failure."""
    FALSE = "false"
    OPEN = "open"
    """Up, or cleared less than the window, at the end of the record: too early to judge."""


@dataclass(frozen=True, slots=True)
class Episode:
    """One alarm from its raise to its clear, in epoch milliseconds."""

    raised_ms: int
    cleared_ms: int | None


@dataclass(frozen=True, slots=True)
class Judged:
    """One motor's failures and alarm episodes, judged."""

    earliest: list[int | None]
    """Per failure, the index of the earliest-raised episode that forewarned it; None: not forewarned."""
    verdicts: list[Verdict]
    """Per episode."""

    def lead_h(self, episodes: Sequence[Episode], failures_ms: Sequence[int]) -> list[float | None]:
        """Per failure, calendar hours from the earliest raise that forewarned it; None: not forewarned."""
        return [
            None if index is None else (failure_ms - episodes[index].raised_ms) / HOUR_MS
            for index, failure_ms in zip(self.earliest, failures_ms, strict=True)
        ]


def judge(
    episodes: Sequence[Episode],
    failures_ms: Sequence[int],
    *,
    window_h: float = WARNING_WINDOW_H,
    end_ms: int | None = None,
) -> Judged:
    """One motor's episodes against its failures (both in any order); `end_ms`: when its record ends, if it
    matters that an episode could still count for a failure after it (None: every episode is judged)."""
    window_ms = window_h * HOUR_MS
    earliest: list[int | None] = [None] * len(failures_ms)
    verdicts: list[Verdict] = []
    for index, episode in enumerate(episodes):
        counted = False
        for position, failure_ms in enumerate(failures_ms):
            if failure_ms <= episode.raised_ms:
                continue
            if episode.cleared_ms is not None and failure_ms - episode.cleared_ms >= window_ms:
                continue  # cleared a window or more before this failure
            counted = True
            best = earliest[position]
            if best is None or episode.raised_ms < episodes[best].raised_ms:
                earliest[position] = index
        if counted:
            verdicts.append(Verdict.FOREWARNED)
        elif end_ms is not None and (episode.cleared_ms is None or end_ms - episode.cleared_ms < window_ms):
            verdicts.append(Verdict.OPEN)
        else:
            verdicts.append(Verdict.FALSE)
    return Judged(earliest, verdicts)
