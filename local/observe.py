"""What the local stack lets its user see: every routed message, invocation, batch and alert; and when it is idle.

The `Observer` counts outcomes and keeps the alerts the operator's queue received, and passes each
to the listeners `subscribe` adds (the demo's watch and view, tests). `AlertReader` drains the
operator's SQS queue, as an operator's mail would arrive. `settle` waits for the pipeline's work to run out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from local.accounting import Accounts
from local.kinesis import BatchOutcome
from local.lambdas import Outcome
from local.router import Routed

log = logging.getLogger("local.stack")

Listener = Callable[[str, Any], None]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as the operator's queue received it from the SNS topic."""

    received_s: float
    subject: str
    body: str
    attributes: dict[str, str]

    @property
    def motor_id(self) -> str:
        return self.attributes.get("motor_id", "")

    @classmethod
    def from_sns(cls, envelope: dict[str, Any]) -> Alert:
        """From the SNS envelope an SQS subscription delivers."""
        attributes = envelope.get("MessageAttributes") or {}
        return cls(
            received_s=time.monotonic(),
            subject=str(envelope.get("Subject") or ""),
            body=str(envelope.get("Message") or ""),
            attributes={name: str(value.get("Value", "")) for name, value in attributes.items()},
        )


class Observer:
    """Outcome counts and alerts, and the listeners told of each; thread-safe (the stack's threads report here)."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.outcomes: Counter[str] = Counter()
        """'<function>.<status>' per invocation (and reading of a batch), '<function>.batches',
        '<function>.dead_lettered', 'schedule.<name>' per scheduled invocation."""
        self.accounts = Accounts()
        """Every message each rule received and what became of it (the router reports there too)."""
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        """`listener(kind, item)` for 'routed' (local.router.Routed), 'outcome' (local.lambdas.Outcome), 'batch'
        (local.kinesis.BatchOutcome) and 'alert' (Alert), on the stack's threads."""
        self._listeners.append(listener)

    def alert_count(self) -> int:
        with self._lock:
            return len(self.alerts)

    def on_routed(self, routed: Routed) -> None:
        self._tell("routed", routed)

    def on_outcome(self, outcome: Outcome) -> None:
        status = "failed" if outcome.error is not None else str((outcome.result or {}).get("status", "ok"))
        with self._lock:
            self.outcomes[f"{outcome.function}.{status}"] += 1
            if outcome.dead_lettered:
                self.outcomes[f"{outcome.function}.dead_lettered"] += 1
        self.accounts.on_outcome(outcome)
        self._tell("outcome", outcome)

    def on_batch(self, outcome: BatchOutcome) -> None:
        with self._lock:
            self.outcomes[f"{outcome.function}.batches"] += 1
            if outcome.error is not None and not outcome.discarded:
                self.outcomes[f"{outcome.function}.failed"] += 1
            for reading in outcome.readings:
                self.outcomes[f"{outcome.function}.{reading.get('status', 'ok')}"] += 1
            if outcome.dead_lettered:
                self.outcomes[f"{outcome.function}.dead_lettered"] += outcome.discarded
        self.accounts.on_batch(outcome)
        self._tell("batch", outcome)

    def on_schedule(self, name: str) -> None:
        with self._lock:
            self.outcomes[f"schedule.{name}"] += 1

    def on_alert(self, alert: Alert) -> None:
        with self._lock:
            self.alerts.append(alert)
        self._tell("alert", alert)

    def _tell(self, kind: str, item: Any) -> None:
        for listener in self._listeners:
            try:
                listener(kind, item)
            except Exception:
                log.exception("a listener of the local stack failed on %s", kind)


class AlertReader:
    """A thread that long-polls the operator's queue and hands each alert to the observer."""

    def __init__(self, sqs: Any, queue_url: str, observer: Observer) -> None:
        self._sqs, self._url, self._observer = sqs, queue_url, observer
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                response = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception as exc:  # moto going away while stopping
                if self._stopping.is_set():
                    return
                log.warning("cannot read the alert queue: %s", exc)
                time.sleep(0.5)
                continue
            for message in response.get("Messages", []):
                self._observer.on_alert(Alert.from_sns(json.loads(message["Body"])))
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])


class Work(Protocol):
    """What `settle` asks of the running pipeline (local.pipeline.Pipeline)."""

    def idle(self) -> bool: ...
    def progress(self) -> int: ...


def settle(
    work: Work, observer: Observer, *, stall_s: float = 60.0, quiet_s: float = 1.5, limit_s: float = 3600.0
) -> bool:
    """Wait until the pipeline is idle and no alert arrived for `quiet_s`; whether it settled.

    A backlog (a burst queued in the functions, or messages the rules still work off) may take long: the
    wait gives up only when no invocation has finished and no message was routed for `stall_s`, or after
    `limit_s` in all.
    """
    started = time.monotonic()
    calm_since: float | None = None
    progress_at, done, seen = started, -1, -1
    while time.monotonic() - started < limit_s:
        now = time.monotonic()
        alerts = observer.alert_count()
        finished = work.progress()
        if finished != done:
            progress_at, done = now, finished
        if work.idle() and alerts == seen:
            calm_since = calm_since or now
            if now - calm_since >= quiet_s:
                return True
        else:
            calm_since = None
            if now - progress_at >= stall_s:
                return False
        seen = alerts
        time.sleep(0.1)
    return False
