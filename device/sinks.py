"""Where the simulator's readings go: MQTT connections (AWS IoT Core or the local stack's broker), or stdout."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Protocol, TextIO

from device.mqtt import DeliveryCounts, DeviceConnection
from device.physics import Sample
from motor_maintenance.topics import DEFAULT_NAMESPACE, telemetry_topic


class Sink(Protocol):
    def submit(self, sample: Sample) -> None: ...
    def counts(self) -> DeliveryCounts: ...
    def status(self) -> str: ...
    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts: ...


class StdoutSink:
    """JSON lines on standard output: what would be published, one reading per line."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._counts = DeliveryCounts()

    def submit(self, sample: Sample) -> None:
        self._out.write(json.dumps(sample.payload(), separators=(",", ":")) + "\n")
        self._out.flush()
        self._counts.submitted += 1
        self._counts.sent += 1
        self._counts.acknowledged += 1

    def counts(self) -> DeliveryCounts:
        return self._counts

    def status(self) -> str:
        return "stdout"

    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts:
        return self._counts


class RecordingSink:
    """Any sink, plus a JSON line per reading with its topic and the simulator's ground truth, flushed per line."""

    def __init__(self, inner: Sink, out: TextIO, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._inner = inner
        self._out = out
        self._namespace = namespace

    def submit(self, sample: Sample) -> None:
        self._inner.submit(sample)
        truth = sample.truth
        record = {
            "topic": telemetry_topic(sample.reading.motor_id, self._namespace),
            "payload": sample.payload(),
            "truth": {
                "failed_mode": truth.failed_mode.value if truth.failed_mode is not None else None,
                "health": truth.health,
            },
        }
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._out.flush()

    def counts(self) -> DeliveryCounts:
        return self._inner.counts()

    def status(self) -> str:
        return self._inner.status()

    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts:
        return self._inner.close(timeout_s=timeout_s, deliver_queued=deliver_queued)


class MqttSink:
    """Routes each motor's readings to its connection."""

    def __init__(self, connections: Sequence[DeviceConnection]) -> None:
        self.connections = tuple(connections)
        self._by_motor = {motor: c for c in self.connections for motor in c.motors}
        self._closed = False

    def start(self, timeout_s: float, stop: threading.Event) -> list[str]:
        """Start every connection; the problems of those not connected within `timeout_s` (or by a stop)."""
        for connection in self.connections:
            connection.start()
        deadline = time.monotonic() + timeout_s
        problems = []
        for connection in self.connections:
            # In short slices, so that Ctrl-C while connecting is heard at once.
            while not (connection.ever_connected.wait(0.1) or stop.is_set() or time.monotonic() >= deadline):
                pass
            if not connection.ever_connected.is_set():
                # s2n reports a failed TLS handshake (e.g. an untrusted broker) only after 10-30 s.
                reason = connection.last_error or "no answer yet; a TLS failure (check --ca) is reported late"
                problems.append(f"{connection.settings.client_id}: {reason}")
        return problems

    def submit(self, sample: Sample) -> None:
        payload = json.dumps(sample.payload(), separators=(",", ":")).encode()
        motor_id = sample.reading.motor_id
        connection = self._by_motor[motor_id]
        connection.submit(telemetry_topic(motor_id, connection.settings.topic_namespace), payload)

    def counts(self) -> DeliveryCounts:
        return sum((c.counts() for c in self.connections), DeliveryCounts())

    def status(self) -> str:
        reconnects = sum(max(c.connections - 1, 0) for c in self.connections)
        if self._closed:
            return f"{len(self.connections)} connections, {reconnects} reconnects"
        up = sum(c.connected for c in self.connections)
        return f"{up}/{len(self.connections)} connected, {reconnects} reconnects"

    def close(self, *, timeout_s: float, deliver_queued: bool) -> DeliveryCounts:
        self._closed = True
        # One deadline for all: closing them one after another would multiply the wait.
        deadline = time.monotonic() + timeout_s
        threads = [
            threading.Thread(
                target=c.close, kwargs={"timeout_s": timeout_s, "deliver_queued": deliver_queued}, daemon=True
            )
            for c in self.connections
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()) + 10.0)
        return self.counts()
