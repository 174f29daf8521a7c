"""The helper that points `sam local invoke` at a deployed stack."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from scripts.sam_local_env import FUNCTION_ENV, main
from tests.support import ROOT


class CloudFormation:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: {suffix: loader.construct_scalar(node)} if isinstance(node, yaml.ScalarNode) else None,
)


def template() -> dict[str, Any]:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass


def test_it_maps_every_functions_environment_to_the_stacks_outputs(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = {name: f"value-of-{name}" for name in template()["Outputs"]}

    assert main(["--stack", "s"], cloudformation=CloudFormation(outputs)) == 0

    document = json.loads(capsys.readouterr().out)
    assert document["AlertFunction"]["ALERT_TOPIC_ARN"] == "value-of-AlertTopicArn"
    assert document["InferenceFunction"]["STATE_TABLE_NAME"] == "value-of-StateTableName"
    # The deployed stack's namespace, not the parameter's default that SAM CLI would resolve
    assert {env["TOPIC_NAMESPACE"] for env in document.values()} == {"value-of-TopicNamespace"}


def test_it_covers_every_function_of_the_template() -> None:
    functions = {name for name, r in template()["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(FUNCTION_ENV) == functions


def _names_a_parameter(value: Any, parameters: set[str]) -> bool:
    return isinstance(value, dict) and value.get("Ref") in parameters


def test_it_covers_every_environment_variable_the_template_sets() -> None:
    resources = template()["Resources"]
    parameters = set(template()["Parameters"])
    global_env = template()["Globals"]["Function"]["Environment"]["Variables"]
    for function, env in FUNCTION_ENV.items():
        own = resources[function]["Properties"].get("Environment", {}).get("Variables", {})
        # SAM CLI resolves a Ref to a parameter itself (its default, or --parameter-overrides); to a resource,
        # only to the logical id: those need the stack's outputs.
        resolved_by_ref = {
            v
            for v, value in (global_env | own).items()
            if not v.startswith("POWERTOOLS_") and "TIMEOUT" not in v and not _names_a_parameter(value, parameters)
        }
        assert resolved_by_ref <= set(env), f"{function}: {resolved_by_ref - set(env)} not filled in"


def test_a_stack_without_the_outputs_is_refused_by_name() -> None:
    with pytest.raises(SystemExit, match="StateTableName"):
        main(["--stack", "other"], cloudformation=CloudFormation({"Foo": "bar"}))


def test_a_stack_without_a_model_leaves_the_model_variables_empty(capsys: pytest.CaptureFixture[str]) -> None:
    """EndpointName and ModelS3Url are declared only when they have a value (a default deploy has neither)."""
    declared = template()["Outputs"]
    outputs = {name: f"value-of-{name}" for name, output in declared.items() if "Condition" not in output}

    assert main(["--stack", "s"], cloudformation=CloudFormation(outputs)) == 0

    inference = json.loads(capsys.readouterr().out)["InferenceFunction"]
    assert inference["ENDPOINT_NAME"] == ""
    assert inference["MODEL_S3_URL"] == ""
    assert inference["STATE_TABLE_NAME"] == "value-of-StateTableName"
