"""Every message each IoT rule received, whoever published it, and what became of it: the stack's accounting.

A message a rule's topic filter matches is `received` by the rule, then settles as exactly one of:
`processed` (its function took it: applied, duplicate, stale, ignored, or an alert sent), `rejected`
(its function refused it with a reason: the schema, a reading from the future), `dead_lettered` (the
rule's error action or the function's on-failure destination holds it) or `filtered` (the rule's WHERE
did not select it). The fate comes from the rule's first Lambda or Kinesis action (its Firehose actions
only archive); a rule with neither settles a message once its actions took it. Whatever has not settled
is in flight while the stack runs, and lost once it has settled: `lines` shows that difference.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from local.kinesis import BatchOutcome
from local.lambdas import Outcome

FATES = ("processed", "rejected", "dead_lettered", "filtered")
REJECTED_STATUSES = frozenset({"rejected", "future"})
"""A function's answer `status` that means the message was refused (motor_lambda.responses)."""


def fate_of(result: Any, error: dict[str, Any] | None, dead_lettered: bool) -> str | None:
    """What one function answer means for the message: a fate, or None when it is lost (failed, not parked)."""
    if error is not None:
        return "dead_lettered" if dead_lettered else None
    status = result.get("status") if isinstance(result, dict) else None
    return "rejected" if status in REJECTED_STATUSES else "processed"


class Accounts:
    """Thread-safe counts per rule: the router reports what it received and settled, the functions the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._rules: list[str] = []
        self._records: dict[str, str] = {}
        """Stream records not settled yet: sequence number -> the rule that put it."""

    def received(self, rule: str) -> None:
        self._add(rule, "received")

    def settle(self, rule: str, fate: str | None, count: int = 1) -> None:
        """`count` messages of `rule` reached `fate` (None: lost, counted as such)."""
        self._add(rule, fate or "lost", count)

    def streamed(self, rule: str, sequence_number: str | None) -> None:
        """A record the rule put into a stream: it settles with the batch that takes it (on_batch)."""
        if sequence_number is None:  # a stream that tells no sequence number: the put itself is the handoff
            self.settle(rule, "processed")
            return
        with self._lock:
            self._records[sequence_number] = rule

    def on_outcome(self, outcome: Outcome) -> None:
        """An asynchronous invocation ended: it settles the message of the rule that invoked it."""
        rule = outcome.invocation.source
        if rule is not None:
            self.settle(rule, fate_of(outcome.result, outcome.error, outcome.dead_lettered))

    def on_batch(self, outcome: BatchOutcome) -> None:
        """A batch of a stream: its settled readings and its discarded records settle the rules' records."""
        settled: set[str] = set()
        for reading in outcome.readings:
            number = str(reading.get("sequence_number"))
            settled.add(number)
            rule = self._take(number)
            if rule is not None:
                self.settle(rule, fate_of(reading, None, False))
        if outcome.discarded:
            # The discarded records are the batch's last ones (from the lowest failure on).
            left = [number for number in outcome.sequence_numbers if number not in settled]
            for number in left[-outcome.discarded :]:
                rule = self._take(number)
                if rule is not None:
                    self.settle(rule, "dead_lettered" if outcome.dead_lettered else None)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Per rule (in the order they first received): received, each fate, lost, and `unsettled`."""
        with self._lock:
            counts, rules = dict(self._counts), list(self._rules)
        table = {}
        for rule in rules:
            row = {key: counts.get((rule, key), 0) for key in ("received", *FATES, "lost")}
            row["unsettled"] = row["received"] - sum(row[key] for key in (*FATES, "lost"))
            table[rule] = row
        return table

    def _take(self, sequence_number: str) -> str | None:
        with self._lock:
            return self._records.pop(sequence_number, None)

    def _add(self, rule: str, key: str, count: int = 1) -> None:
        with self._lock:
            if rule not in self._rules:
                self._rules.append(rule)
            self._counts[(rule, key)] += count


def lines(table: dict[str, dict[str, int]], *, settled: bool) -> list[str]:
    """One line per rule: received = processed + rejected + dead-lettered, and what is missing as lost
    (`settled`: the pipeline's work ran out) or in flight (it is still running)."""
    out = []
    for rule, row in table.items():
        missing = row["lost"] + row["unsettled"] if settled else row["lost"]
        line = (
            f"  {rule}: received {row['received']} = processed {row['processed']} + rejected {row['rejected']} "
            f"+ dead-lettered {row['dead_lettered']}"
            + (f" + filtered {row['filtered']}" if row["filtered"] else "")
            + f", lost {missing}"
        )
        if not settled and row["unsettled"]:
            line += f", in flight {row['unsettled']}"
        if missing:
            line += "  (LOST: the stack's log says why)"
        out.append(line)
    return out or ["  no IoT rule has received a message"]
