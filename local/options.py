"""How a local stack runs: its options, and the account, region and names it gives what it emulates."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.artifact import DEFAULT_ARTIFACT
from motor_maintenance.topics import DEFAULT_NAMESPACE, check_namespace

log = logging.getLogger("local.stack")

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = REPO / ".local-stack"
STACK_NAME = "motor-maintenance-local"
REGION = "us-east-1"
ACCOUNT = "123456789012"
INFERENCE_MODES = ("endpoint", "embedded")
INGESTION_MODES = ("direct", "batched")
MIN_BATCH_WINDOW_S = 0.2
"""The shortest batching window a sped-up run waits (the pollers read a shard every 0.1 s)."""


@dataclass
class StackOptions:
    """How to run the local stack; the defaults are the demo's."""

    state_dir: Path = STATE_DIR
    template: Path = REPO / "template.yaml"
    model: Path | None = DEFAULT_ARTIFACT
    """The artifact to serve; None runs without a model (the predictive strategy is then off, as in AWS)."""
    inference_mode: str = "endpoint"
    """The template's InferenceMode: 'endpoint' (a SageMaker runtime on loopback) or 'embedded' (in the function)."""
    ingestion_mode: str = "direct"
    """The template's IngestionMode: 'direct' (the rules invoke InferenceFunction) or 'batched' (through Kinesis)."""
    batch_window_s: float | None = None
    """Batched: gather a batch this long instead of the mapping's MaximumBatchingWindowInSeconds (60 s)."""
    speedup: float = 1.0
    """Simulated seconds per wall second of the fleet driven through the stack. The mapping's batching window
    is a span of the readings' time, so without `batch_window_s` it is waited window / speedup wall seconds
    (at least MIN_BATCH_WINDOW_S): a reading waits as long in simulated time as it would in AWS."""
    train_if_missing: bool = True
    broker: str = "auto"
    """'mosquitto', 'builtin' or 'auto' (mosquitto when installed, builtin with `allow_legacy_topic`)."""
    allow_legacy_topic: bool = False
    """The template's AllowLegacyTopic: devices may also publish the original sample's payload on
    'iml_iotevents_data' (LegacyTelemetryRule). Needs the built-in broker (local.iot_core says why)."""
    topic_namespace: str = DEFAULT_NAMESPACE
    """The template's TopicNamespace: the stack's rules, device policy and functions use {namespace}/... topics only."""
    detector_config: Mapping[str, Any] | None = None
    """Overrides put in the detector-config SSM parameter, as an operator would."""
    concurrency: int = 1
    retry_delays_s: tuple[float, ...] = (1.0, 2.0)
    devices: tuple[str, ...] = ()
    """Motor ids to issue certificates for."""
    schedule_period_s: float | None = None
    """Run every `Schedule` event at this period instead of the template's (tests that cannot wait a minute)."""
    archive_dir: Path | None = None
    """Where the template's Firehose delivery streams write the archive; None: `archive` under the state directory."""
    log: Callable[[str], None] = field(default=lambda line: log.info("%s", line))

    @property
    def archive(self) -> Path:
        """The archive folder (docs/archive.md's layout)."""
        return self.archive_dir if self.archive_dir is not None else self.state_dir / "archive"

    def check(self) -> None:
        """ValueError for a mode the template does not know, or a topic namespace that is not one topic level."""
        check_namespace(self.topic_namespace)
        if self.inference_mode not in INFERENCE_MODES:
            raise ValueError(f"inference_mode {self.inference_mode!r} is not one of {INFERENCE_MODES}")
        if self.ingestion_mode not in INGESTION_MODES:
            raise ValueError(f"ingestion_mode {self.ingestion_mode!r} is not one of {INGESTION_MODES}")


def batching_window_s(template_s: float, options: StackOptions) -> float:
    """How long the local mapping gathers a batch: the override, or the template's window in simulated time."""
    if options.batch_window_s is not None:
        return options.batch_window_s
    return min(template_s, max(MIN_BATCH_WINDOW_S, template_s / options.speedup))


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when it is under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
