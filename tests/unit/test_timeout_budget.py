"""The time budget of an invocation: the model's share is bounded, and no call starts unless it can finish in time.

Read from the real template.yaml and the real clients' configurations; the worst case of a call is
computed here from botocore's own retry rules, independently of motor_adapters.clients.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError
from botocore.retries.standard import ExponentialBackoff

import motor_adapters.clients
from local.cfn import parse
from motor_adapters.clients import RESERVE_S, OutOfTime, worst_case_s
from motor_adapters.clients import client as real_client
from motor_lambda.settings import InferenceSettings
from tests.conftest import FakeAws
from tests.support import ROOT, LambdaContext, kinesis_batch, load_event, load_handler, reading_payload

TEMPLATE = parse((ROOT / "template.yaml").read_text())
# The AWS services each function's code calls (its adapters, Powertools' SSM and idempotency layers).
SERVICES = {
    "InferenceFunction": ["ssm", "dynamodb", "iot-data", "sagemaker-runtime"],
    "OperatorActionFunction": ["ssm", "dynamodb", "iot-data"],
    "AlertFunction": ["dynamodb", "sns"],
    "ArchiveFunction": ["firehose"],  # IngestionMode batched
}
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
HANDLERS = {
    "InferenceFunction": "inference",
    "OperatorActionFunction": "actions",
    "AlertFunction": "alerts",
    "ArchiveFunction": "archive",
}
HEALTHY_CALLS_S = 1.0
"""All the calls of an invocation that are not slow, together: each takes milliseconds."""


def function_setting(function: str, name: str) -> Any:
    properties = TEMPLATE["Resources"][function]["Properties"]
    return properties.get(name, TEMPLATE["Globals"]["Function"].get(name))


def template_settings() -> InferenceSettings:
    """The inference function's settings as the template sets them."""
    variables = TEMPLATE["Resources"]["InferenceFunction"]["Properties"]["Environment"]["Variables"]
    return InferenceSettings.from_env(dict(os.environ) | {"ENDPOINT_TIMEOUT_S": variables["ENDPOINT_TIMEOUT_S"]})


def worst_case(config: Config) -> float:
    """botocore standard mode: per attempt connect + read timeout; before retry i at most
    min(throttling base * 2**(i-1), max backoff), stretched by up to 5 s by an x-amz-retry-after header."""
    attempts = config.retries["total_max_attempts"]  # type: ignore[attr-defined]
    base = ExponentialBackoff._DEFAULT_BACKOFF_CONFIG["throttling_base_scale"]
    backoff = sum(
        min(base * ExponentialBackoff._BASE**retry, ExponentialBackoff._MAX_BACKOFF)
        + ExponentialBackoff._RETRY_AFTER_MAX_ADDITIONAL
        for retry in range(attempts - 1)
    )
    return attempts * (config.connect_timeout + config.read_timeout) + backoff  # type: ignore[attr-defined]


@pytest.fixture
def configs(aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> dict[str, Config]:
    """The configuration of every client the functions build, taken from the clients they build."""
    made: dict[str, Any] = {}

    def client(service: str, **kwargs: Any) -> Any:
        made[service] = real_client(service, **kwargs)
        return made[service]

    monkeypatch.setattr(motor_adapters.clients, "client", client)
    inference = load_handler("inference")
    monkeypatch.setattr(inference.ingestion, "settings", template_settings())
    assert inference.ingestion.ports.predictor is not None
    load_handler("alerts").sns()
    load_handler("archive").archive()
    assert set(made) == {service for services in SERVICES.values() for service in services}
    return {service: made_client.meta.config for service, made_client in made.items()}


def test_no_client_waits_on_botocore_defaults(configs: dict[str, Config]) -> None:
    """botocore's defaults are a 60 s connect and a 60 s read timeout: one such call outlives the invocation."""
    for service, config in configs.items():
        assert config.connect_timeout <= 1, service  # type: ignore[attr-defined]
        assert config.read_timeout <= 3, service  # type: ignore[attr-defined]
        assert config.retries["mode"] == "standard", service  # type: ignore[attr-defined]
    assert configs["sagemaker-runtime"].retries["total_max_attempts"] == 1  # type: ignore[attr-defined]


def test_the_guard_computes_a_call_s_worst_case_as_botocore_retries_it(configs: dict[str, Config]) -> None:
    for service, config in configs.items():
        assert worst_case_s(config) == pytest.approx(worst_case(config)), service


def test_after_the_model_at_its_worst_every_function_still_has_time_for_any_call_at_its_worst(
    configs: dict[str, Config],
) -> None:
    """The guard lets a call start only if its worst case fits in what is left. So that the endpoint is
    never the reason a call is refused, the Timeout must hold the model's worst case, then any other
    call's worst case, the guard's reserve, and the calls that were not slow."""
    model = worst_case(configs["sagemaker-runtime"])
    assert model == 4.0  # connect 1 s + read 3 s (ENDPOINT_TIMEOUT_S), one attempt
    for function, services in SERVICES.items():
        timeout = function_setting(function, "Timeout")
        slowest = max(worst_case(configs[service]) for service in services if service != "sagemaker-runtime")
        needed = (model if "sagemaker-runtime" in services else 0.0) + slowest + RESERVE_S + HEALTHY_CALLS_S
        assert timeout >= needed, f"{function}: Timeout {timeout} s < {needed} s (slowest call {slowest} s)"


def test_the_test_lambda_context_starts_with_the_template_s_timeout() -> None:
    """The handler tests run with the time a real invocation has, so the guard treats them alike."""
    for function in SERVICES:
        assert LambdaContext().get_remaining_time_in_millis() == function_setting(function, "Timeout") * 1000


# --- the guard at work, on a simulated clock ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(motor_adapters.clients, "_clock", fake)
    return fake


class SlowCalls:
    """Makes each AWS call take `duration(config)` of simulated time; records what was called and refused."""

    def __init__(self, clock: Clock, monkeypatch: pytest.MonkeyPatch, duration: Any) -> None:
        self.clock, self.duration = clock, duration
        self.calls: list[str] = []
        self._hooked: set[int] = set()
        self.endpoint: Any = None
        """The model's client, when it takes its time its own way (slow_endpoint)."""

        def client(service: str, **kwargs: Any) -> Any:
            if service == "sagemaker-runtime" and self.endpoint is not None:
                return self.endpoint
            made = real_client(service, **kwargs)
            if id(made) not in self._hooked:
                self._hooked.add(id(made))
                made.meta.events.register("before-call", self._take_time)  # runs after the guard
            return made

        monkeypatch.setattr(motor_adapters.clients, "client", client)

    def _take_time(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        self.calls.append(model.name)
        self.clock.now += self.duration(context["client_config"])


def slow_endpoint(clock: Clock) -> Any:
    """The real sagemaker-runtime client, whose call waits out its whole worst case and times out."""
    runtime = real_client("sagemaker-runtime", read_timeout=template_settings().endpoint_timeout_s, max_attempts=1)

    def time_out(context: dict[str, Any], **_: Any) -> None:
        clock.now += worst_case(context["client_config"])
        raise ReadTimeoutError(endpoint_url="https://runtime.sagemaker.eu-west-1.amazonaws.com")

    runtime.meta.events.register("before-call", time_out)
    return runtime


@pytest.fixture
def timeout_s() -> float:
    return float(function_setting("InferenceFunction", "Timeout"))


def test_with_the_endpoint_at_its_worst_on_every_reading_each_one_is_still_applied_and_announced(
    aws: FakeAws, clock: Clock, monkeypatch: pytest.MonkeyPatch, timeout_s: float
) -> None:
    """Given the model timing out at its worst case each time, when a reading raises an alarm and is the
    fifth failure in a row (so the health record changes too, the most calls an invocation makes),
    then every reading is applied and announced within the Timeout, and no call was refused."""
    calls = SlowCalls(clock, monkeypatch, duration=lambda _config: 0.02)
    inference = load_handler("inference")
    calls.endpoint = slow_endpoint(clock)
    context = LambdaContext()

    for seq, at_s in enumerate((0, 15, 30, 45, 60)):  # vibration past zone D; held 60 s at the last
        started = clock.now
        event = reading_payload(seq, at_s=at_s, vibration_mm_s=12.0) | {"topic_motor_id": "motor-001"}
        answer = inference.lambda_handler(event, context)
        assert answer["status"] == "applied"
        assert clock.now - started <= timeout_s - RESERVE_S

    assert answer["alarm_states"]["vibration_zone_d"] == "ACTIVE"
    topics = [topic for topic, _event in aws.published()]
    assert topics == ["motors/motor-001/alarms", "motors/all.motors/alarms"]
    assert len(calls.calls) >= 8  # the last invocation: state read, saved, published, emptied; health the same


@pytest.mark.parametrize("function", sorted(HANDLERS))
def test_with_every_call_at_its_worst_an_invocation_ends_with_an_error_before_its_timeout(
    function: str, aws: FakeAws, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda never has to kill it half-way: the first call that might not finish is not started, and the
    invocation fails with a reason, to be retried and then parked like any other failure."""
    calls = SlowCalls(clock, monkeypatch, duration=worst_case)
    handler = load_handler(HANDLERS[function])
    if function == "InferenceFunction":
        calls.endpoint = slow_endpoint(clock)
    event = {
        "InferenceFunction": reading_payload(1) | {"topic_motor_id": "motor-001"},
        "OperatorActionFunction": load_event("action-service-complete"),
        "AlertFunction": load_event("alarm-raised"),
        # 501 documents that travel alone: two PutRecordBatch calls (500 records a call at most)
        "ArchiveFunction": kinesis_batch([b"not a reading"] * 501),
    }[function]
    timeout = float(function_setting(function, "Timeout"))
    started = clock.now

    with pytest.raises(Exception) as failure:  # noqa: PT011 - each function fails with its own domain error
        handler.lambda_handler(event, LambdaContext())

    assert clock.now - started <= timeout - RESERVE_S
    assert calls.calls, "not even one call was made"
    assert any(isinstance(cause, OutOfTime) for cause in causes(failure.value)), failure.value


def causes(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception and everything it was raised from."""
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__
