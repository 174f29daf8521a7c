"""template.yaml refuses what cannot work before it creates anything, and says nothing it does not mean.

The template's Rules, Conditions and outputs are evaluated here for the parameters a user may give
(a small evaluator of the intrinsic functions they use), so a test states what a deploy would do:
refuse a model in a region without SageMaker's XGBoost image, grant kms:Decrypt on the artifact's key
only when there is one, and declare no output that would be empty.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from model import inference
from tests.support import ROOT
from tests.unit.test_template import TEMPLATE, Template, each, referenced_names

RULE_FUNCTIONS = {
    "Fn::And",
    "Fn::Contains",
    "Fn::EachMemberEquals",
    "Fn::EachMemberIn",
    "Fn::Equals",
    "Fn::If",
    "Fn::Not",
    "Fn::Or",
    "Fn::RefAll",
    "Fn::ValueOf",
    "Fn::ValueOfAll",
}
"""What a Rules section may use (CloudFormation User Guide, "Rule functions"): no Fn::FindInMap, no Condition."""

MODEL = "s3://models-bucket/motor/model.tar.gz"
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
UNSUPPORTED_REGION = "eu-central-2"  # a commercial region that XGBoostRegistry does not list

SCENARIOS: dict[str, dict[str, str]] = {
    "defaults": {},
    "endpoint": {"ModelDataUrl": MODEL},
    "endpoint with key": {"ModelDataUrl": MODEL, "ArtifactKmsKeyArn": KEY},
    "embedded": {"ModelDataUrl": MODEL, "InferenceMode": "embedded"},
    "embedded with key": {"ModelDataUrl": MODEL, "InferenceMode": "embedded", "ArtifactKmsKeyArn": KEY},
    "existing endpoint": {"ExistingEndpointName": "motor-model", "ModelDataUrl": MODEL},
    "key without model": {"ArtifactKmsKeyArn": KEY},
    "batched, everything set": {
        "IngestionMode": "batched",
        "AlertEmail": "alerts@example.com",
        "OpsEmail": "ops@example.com",
        "CertificateArn": "arn:aws:iot:eu-west-1:123456789012:cert/" + "a" * 64,
        "ConsoleAuthDomainPrefix": "motors-example",
        "ModelDataUrl": MODEL,
    },
}


class Stack:
    """The template's parameters, conditions and intrinsic functions, evaluated for one deploy."""

    def __init__(self, template: Template, region: str = "eu-west-1", **overrides: str) -> None:
        self.template = template
        unknown = set(overrides) - set(template["Parameters"])
        assert not unknown, f"the template has no parameter(s) {unknown}"
        self.values: dict[str, Any] = {
            name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()
        } | overrides
        self.values |= {"AWS::Region": region, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
        self.values["AWS::URLSuffix"] = "amazonaws.com"

    def condition(self, name: str) -> bool:
        return bool(self.evaluate(self.template["Conditions"][name]))

    def holds(self, when: tuple[str, ...]) -> bool:
        """Whether every condition of an `each()` path holds ("!Name": Name is false)."""
        return all(self.condition(c[1:]) is False if c.startswith("!") else self.condition(c) for c in when)

    def evaluate(self, node: Any) -> Any:
        """A value as CloudFormation would resolve it; a resource's Ref or attribute as '<Name>'."""
        if isinstance(node, list):
            return [self.evaluate(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not any(key.startswith("Fn::") or key in {"Ref", "Condition"} for key in node):
            return {key: self.evaluate(value) for key, value in node.items()}  # a plain mapping
        [(function, argument)] = node.items()
        if function == "Ref":
            if argument in self.values:
                return self.values[argument]
            assert argument in self.template["Resources"], f"Ref to {argument}, which the template does not declare"
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{argument[0] if isinstance(argument, list) else argument}>"
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::If":
            condition, if_true, if_false = argument
            return self.evaluate(if_true if self.condition(condition) else if_false)
        if function == "Fn::Sub":
            pattern, local = (argument, {}) if isinstance(argument, str) else argument
            variables = {name: self.evaluate(value) for name, value in local.items()}
            return re.sub(
                r"\$\{([^!}][^}]*)\}",
                lambda match: str(variables.get(match[1], self.evaluate({"Ref": match[1].split(".")[0]}))),
                pattern,
            )
        values = self.evaluate(argument)
        if function == "Fn::And":
            return all(values)
        if function == "Fn::Or":
            return any(values)
        if function == "Fn::Not":
            return not values[0]
        if function == "Fn::Equals":
            return values[0] == values[1]
        if function == "Fn::Contains":
            return values[1] in values[0]
        if function == "Fn::Select":
            return values[1][int(values[0])]
        if function == "Fn::Split":
            return str(values[1]).split(values[0])
        raise AssertionError(f"the evaluator does not know {function}")

    def rule_refusals(self) -> list[str]:
        """The AssertDescription of every assertion that fails: CloudFormation stops the deploy with it."""
        refusals = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.evaluate(rule["RuleCondition"]):
                continue
            refusals += [a["AssertDescription"] for a in rule["Assertions"] if not self.evaluate(a["Assert"])]
        return refusals

    def included(self, entry: dict[str, Any]) -> bool:
        return "Condition" not in entry or self.condition(entry["Condition"])

    def grants(self, action: str) -> dict[str, dict[str, Any]]:
        """role -> the statement that allows `action` in the roles this deploy creates (with its Fn::If resolved)."""
        found = {}
        for name, resource in self.template["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role" or not self.included(resource):
                continue
            for policy, _ in each(resource["Properties"].get("Policies", [])):
                for statement, when in each(policy["PolicyDocument"]["Statement"]):
                    actions = {a for a, _ in each(statement.get("Action", []))}
                    if self.holds(when) and action in actions and statement["Effect"] == "Allow":
                        found[name] = statement
        return found


def _model_rule(template: Template) -> dict[str, Any]:
    rule: dict[str, Any] = template["Rules"]["ModelEndpointRegion"]
    return rule


# ------------------------------------------------------------------ the region rule


def test_the_region_rule_lists_exactly_the_regions_xgboost_registry_maps() -> None:
    [assertion] = _model_rule(TEMPLATE)["Assertions"]
    regions, region = assertion["Assert"]["Fn::Contains"]

    assert region == {"Ref": "AWS::Region"}
    assert sorted(regions) == sorted(TEMPLATE["Mappings"]["XGBoostRegistry"])
    assert len(regions) == len(set(regions))


@pytest.mark.parametrize("model", ["", MODEL])
@pytest.mark.parametrize("existing", ["", "motor-model"])
@pytest.mark.parametrize("mode", ["endpoint", "embedded"])
def test_the_region_rule_applies_exactly_when_the_stack_creates_an_endpoint(
    model: str, existing: str, mode: str
) -> None:
    stack = Stack(TEMPLATE, ModelDataUrl=model, ExistingEndpointName=existing, InferenceMode=mode)

    assert stack.evaluate(_model_rule(TEMPLATE)["RuleCondition"]) == stack.condition("CreateEndpoint")


def test_a_model_endpoint_in_a_region_without_the_image_is_refused_with_the_ways_out() -> None:
    [refusal] = Stack(TEMPLATE, UNSUPPORTED_REGION, ModelDataUrl=MODEL).rule_refusals()

    assert "region" in refusal
    assert "docs/deploy.md" in refusal
    assert "InferenceMode" in refusal
    assert "ExistingEndpointName" in refusal


@pytest.mark.parametrize(
    "parameters",
    [{}, {"ModelDataUrl": MODEL, "InferenceMode": "embedded"}, {"ExistingEndpointName": "motor-model"}],
    ids=["no model", "embedded model", "existing endpoint"],
)
def test_a_stack_that_creates_no_endpoint_deploys_in_any_region(parameters: dict[str, str]) -> None:
    assert Stack(TEMPLATE, UNSUPPORTED_REGION, **parameters).rule_refusals() == []


@pytest.mark.parametrize("region", sorted(TEMPLATE["Mappings"]["XGBoostRegistry"]))
def test_a_model_endpoint_deploys_in_every_region_with_the_image(region: str) -> None:
    assert Stack(TEMPLATE, region, ModelDataUrl=MODEL).rule_refusals() == []


def test_rules_use_only_rule_functions_and_parameters() -> None:
    def functions(node: Any) -> set[str]:
        if isinstance(node, list):
            return set().union(*map(functions, node)) if node else set()
        if isinstance(node, dict):
            own = {key for key in node if key.startswith("Fn::") or key == "Condition"}
            return own | functions(list(node.values()))
        return set()

    parameters = set(TEMPLATE["Parameters"])
    for name, rule in TEMPLATE["Rules"].items():
        assert functions(rule) <= RULE_FUNCTIONS, f"{name} uses {functions(rule) - RULE_FUNCTIONS}"
        names = referenced_names(rule)
        assert {n for n in names if not n.startswith("AWS::")} <= parameters, f"{name} refers to {names}"
        for assertion in rule["Assertions"]:
            assert len(assertion["AssertDescription"]) > 40, f"{name}: say what is wrong and what to do"


# ------------------------------------------------------------------ the artifact's KMS key


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_kms_decrypt_is_granted_exactly_to_the_artifacts_readers_on_its_key_through_s3(scenario: str) -> None:
    stack = Stack(TEMPLATE, **SCENARIOS[scenario])
    readers = {
        role
        for role, statement in stack.grants("s3:GetObject").items()
        if "ModelDataUrl" in referenced_names(statement["Resource"])
    }
    decrypting = stack.grants("kms:Decrypt")

    if not stack.condition("HasArtifactKmsKey"):
        assert decrypting == {}
        return
    assert set(decrypting) == readers
    for role, statement in decrypting.items():
        assert statement["Action"] == "kms:Decrypt", role
        assert statement["Resource"] == {"Ref": "ArtifactKmsKeyArn"}, role
        assert stack.evaluate(statement["Condition"]) == {
            "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
        }


def test_the_key_is_granted_for_each_way_of_serving_the_model() -> None:
    assert set(Stack(TEMPLATE, **SCENARIOS["endpoint with key"]).grants("kms:Decrypt")) == {"ModelExecutionRole"}
    assert set(Stack(TEMPLATE, **SCENARIOS["embedded with key"]).grants("kms:Decrypt")) == {"InferenceRole"}


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        (KEY, True),
        ("arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab", True),  # multi-Region key
        ("arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", True),
        ("arn:aws:kms:us-east-1:123456789012:alias/models", False),  # IAM cannot scope a grant to an alias
        ("1234abcd-12ab-34cd-56ef-1234567890ab", False),
        ("arn:aws:s3:::models-bucket", False),
    ],
)
def test_the_key_parameter_takes_a_key_arn_or_nothing(value: str, accepted: bool) -> None:
    pattern = TEMPLATE["Parameters"]["ArtifactKmsKeyArn"]["AllowedPattern"]

    assert (re.fullmatch(pattern, value) is not None) is accepted


# ------------------------------------------------------------------ outputs


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_output_is_declared_empty(scenario: str) -> None:
    stack = Stack(TEMPLATE, **SCENARIOS[scenario])
    declared = {name: output for name, output in TEMPLATE["Outputs"].items() if stack.included(output)}
    empty = [name for name, output in declared.items() if stack.evaluate(output["Value"]) in ("", None)]

    assert empty == [], f"{scenario}: outputs {empty} would be empty; give them a Condition"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_an_output_names_only_resources_the_deploy_creates(scenario: str) -> None:
    stack = Stack(TEMPLATE, **SCENARIOS[scenario])
    resources = TEMPLATE["Resources"]
    for name, output in TEMPLATE["Outputs"].items():
        if not stack.included(output):
            continue
        value = stack.evaluate(output["Value"])
        for resource in re.findall(r"<(\w+)>", str(value)):
            assert stack.included(resources[resource]), f"{scenario}: {name} names {resource}, which is not created"


def test_an_unconditional_output_of_a_conditional_value_is_reported() -> None:
    broken = copy.deepcopy(TEMPLATE)
    del broken["Outputs"]["EndpointName"]["Condition"]
    stack = Stack(broken)

    assert stack.evaluate(broken["Outputs"]["EndpointName"]["Value"]) == ""


# ------------------------------------------------------------------ the SageMaker model's environment


def test_the_endpoint_answers_csv_to_a_request_that_names_no_accept_type() -> None:
    """The container passes SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT to output_fn for a missing Accept or */*."""
    environment = TEMPLATE["Resources"]["XGBoostModel"]["Properties"]["PrimaryContainer"]["Environment"]

    assert environment["SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"] == inference.CSV
    assert environment["SAGEMAKER_PROGRAM"] == "inference.py"


def test_the_deploy_page_lists_the_regions_a_model_endpoint_deploys_in() -> None:
    page = (ROOT / "docs" / "deploy.md").read_text()
    section = page[page.index("### Regions for a model endpoint") :]
    section = section[: section.index("\n### ", 1)]

    assert set(re.findall(r"`([a-z]{2}-[a-z]+-\d)`", section)) == set(TEMPLATE["Mappings"]["XGBoostRegistry"])
