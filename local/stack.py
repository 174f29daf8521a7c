"""The local stack: template.yaml's pipeline on one machine, started and stopped as one object.

What runs (docs/local-stack.md says how faithfully each part stands in for AWS), each part in a
module of its own, started in this order and stopped in the reverse:

- the emulated AWS account (local.provision): moto's server, the model (behind a SageMaker runtime
  on loopback, or in S3 for InferenceMode embedded), and the template's tables, queues, topics,
  streams and parameters created in it, reached through the ordinary boto3 clients (local.aws);
- IoT Core (local.iot_core): an MQTT 5 broker on loopback with mutual TLS (mosquitto when installed,
  else local.mqtt_broker), and the IoT data plane publishing to it;
- the template's compute (local.pipeline): every function in execution environments of its own,
  its IoT rules, its event source mappings (IngestionMode batched) and its schedules;
- what the user watches (local.observe): the alerts the operator's SQS queue receives from the alert
  topic, every outcome, and when the pipeline has settled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from local.aws import LocalAws
from local.console_server import ConsoleServer, start_console
from local.iot_core import SERVICES, IotCore
from local.observe import AlertReader, Listener, Observer, settle
from local.options import REGION, STATE_DIR, StackOptions, shown
from local.pipeline import Pipeline
from local.pki import LocalPki
from local.processes import Child
from local.provision import Resources, place_model, provision, start_moto
from local.template import load

log = logging.getLogger("local.stack")

Part = TypeVar("Part")
STACK_FILE = "stack.json"
"""What a running stack tells other processes (scripts/operate.py): its endpoints, in its state directory."""
STATS_FILE = "stats.json"
"""The running stack's accounting (local.accounting), rewritten every STATS_PERIOD_S for `operate.py stats`."""
STATS_PERIOD_S = 1.0


class LocalStack:
    """Start with `start()` (or `with LocalStack(options) as stack`), stop with `stop()`; nothing is left behind."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.state_dir = self.options.state_dir
        self.log_dir = self.state_dir / "logs"
        self.pki = LocalPki(self.state_dir / "pki")
        self.aws = LocalAws()
        self.observer = Observer()
        self.children: list[Child] = []
        """Every process started, in order."""
        self._iot: IotCore | None = None
        self._resources: Resources | None = None
        self._pipeline: Pipeline | None = None
        self._alert_reader: AlertReader | None = None
        self._console: ConsoleServer | None = None
        self._stats_stop = threading.Event()
        self._stats_thread: threading.Thread | None = None
        self.started = False

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the parts, once started

    @property
    def iot(self) -> IotCore:
        return _running(self._iot)

    @property
    def resources(self) -> Resources:
        return _running(self._resources)

    @property
    def pipeline(self) -> Pipeline:
        return _running(self._pipeline)

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_path

    def device_identity(self, motor_id: str) -> tuple[Path, Path]:
        """A motor's certificate and key from the stack's CA (its thing name is the motor id)."""
        self.pki.ensure([motor_id])
        return self.pki.cert_path(motor_id), self.pki.key_path(motor_id)

    def subscribe(self, listener: Listener) -> None:
        """See local.observe.Observer.subscribe."""
        self.observer.subscribe(listener)

    def settle(self, stall_s: float = 60.0, quiet_s: float = 1.5, limit_s: float = 3600.0) -> bool:
        """See local.observe.settle: whether the pipeline's work ran out (and no alert came for `quiet_s`)."""
        return settle(self.pipeline, self.observer, stall_s=stall_s, quiet_s=quiet_s, limit_s=limit_s)

    # -- start and stop

    def start(self) -> None:
        say = self.options.log
        started = time.monotonic()
        try:
            self._start(say)
        except BaseException:
            self.stop(drain_s=0)
            raise
        self.started = True
        say(f"local stack up in {time.monotonic() - started:.1f} s (logs: {shown(self.log_dir)})")

    def _start(self, say: Callable[[str], None]) -> None:
        self.options.check()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        if self.log_dir.exists():
            shutil.rmtree(self.log_dir)
        self.log_dir.mkdir()
        template = load(self.options.template)
        say(f"template: {len(template.rules)} IoT rules, {len(template.functions)} functions")
        self.pki.ensure([*SERVICES, *self.options.devices])

        moto, self.aws.url = start_moto(self.log_dir, say)
        self.children.append(moto)
        endpoint, model_data_url = place_model(self.options, self.aws, self.log_dir, say)
        self.children += [endpoint] if endpoint is not None else []
        self._iot = IotCore(self.pki, self.state_dir, self.log_dir)
        self.children.append(
            self._iot.start_broker(
                self.options.broker,
                say,
                allow_legacy_topic=self.options.allow_legacy_topic,
                namespace=self.options.topic_namespace,
            )
        )
        self.aws.iot_data_url = self._iot.start_data_plane()

        self._resources = resources = provision(template, self.options, self.aws, model_data_url, say)
        self._pipeline = Pipeline(template, self.options, self.observer, self.log_dir)
        self._pipeline.start(resources, self._iot, say)
        self._console = start_console(self._pipeline.functions, self.state_dir, say)
        if resources.alert_queue_url is not None:
            self._alert_reader = AlertReader(self.aws.client("sqs"), resources.alert_queue_url, self.observer)
            self._alert_reader.start()
        self._write_stack_file()
        self._stats_stop.clear()
        self._stats_thread = threading.Thread(target=self._write_stats, name="local-stats", daemon=True)
        self._stats_thread.start()

    def stop(self, drain_s: float = 20.0) -> None:
        """Finish what is in flight (up to `drain_s`), then stop every part, children last. Idempotent."""
        pipeline = self._pipeline
        if pipeline is not None:  # a timer ticking every so often would keep the pipeline from ever settling
            pipeline.stop_schedules()
        if drain_s > 0 and self.started and pipeline is not None and not self.settle(stall_s=drain_s, limit_s=drain_s):
            log.warning("stopping with invocations still pending: %s", pipeline.pending())
        self._stats_stop.set()
        if self._stats_thread is not None:
            self._stats_thread.join(5)
            self._stats_thread = None
        if pipeline is not None:
            pipeline.stop()
        if self._iot is not None:
            self._iot.stop_data_plane()
        if self._alert_reader is not None:
            self._alert_reader.stop()
        if self._console is not None:
            self._console.stop()
            self._console = None
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        self._iot = self._resources = self._pipeline = self._alert_reader = None
        for name in (STACK_FILE, STATS_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / name).unlink()
        self.started = False

    def _write_stack_file(self) -> None:
        iot, resources = self.iot, self.resources
        info = {
            "pid": os.getpid(),
            "region": REGION,
            "topic_namespace": self.options.topic_namespace,
            "aws_endpoint_url": self.aws.url,
            "iot_data_endpoint_url": self.aws.iot_data_url,
            "sagemaker_runtime_endpoint_url": self.aws.model_url,
            "broker": {"host": "127.0.0.1", "port": iot.broker_port, "kind": iot.broker_kind},
            "ca": str(self.pki.ca_path),
            "resources": resources.names,
            "processes": {child.name: child.process.pid for child in self.children if child.process is not None},
            "ports": [iot.broker_port, *(int(url.rsplit(":", 1)[1]) for url in self.aws.urls())],
        }
        (self.state_dir / STACK_FILE).write_text(json.dumps(info, indent=2) + "\n")

    def _write_stats(self) -> None:
        """stats.json every STATS_PERIOD_S while the stack runs (written whole, then renamed: never half read)."""
        path = self.state_dir / STATS_FILE
        while not self._stats_stop.wait(STATS_PERIOD_S):
            stats = {"written_at": time.time(), "rules": self.observer.accounts.snapshot()}
            try:
                partial = path.with_suffix(".partial")
                partial.write_text(json.dumps(stats, indent=2) + "\n")
                partial.replace(path)
            except OSError as exc:
                log.warning("cannot write %s: %s", path, exc)


def running_stats(state_dir: Path = STATE_DIR) -> dict[str, Any] | None:
    """The running local stack's accounting (stats.json), if one is running."""
    if running_stack(state_dir) is None:
        return None
    try:
        stats: dict[str, Any] = json.loads((state_dir / STATS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return stats


def _running(part: Part | None) -> Part:
    if part is None:
        raise RuntimeError("the local stack is not running")
    return part


def running_stack(state_dir: Path = STATE_DIR) -> dict[str, Any] | None:
    """The running local stack's endpoints (stack.json), if one is running."""
    try:
        info: dict[str, Any] = json.loads((state_dir / STACK_FILE).read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(info["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    return info
