"""template.yaml keeps its promises: least privilege, nothing dropped silently, handlers that exist.

Each rule is a function that lists the problems it finds, naming the resource and statement, so a
failure says what to fix. The tests at the end feed each rule a template broken on purpose, to
prove the rule can fail.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.cfn import parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

# Actions AWS does not let a policy scope to a resource: "*" is the only Resource they accept.
# Each entry is a grant on everything of its kind, so the list stays short and each says how the
# grant is narrowed instead (a condition key the statement must use, or None).
UNSCOPABLE_ACTIONS: dict[str, str | None] = {
    "ecr:GetAuthorizationToken": None,  # a registry login token, tied to no repository
    "cloudwatch:PutMetricData": "cloudwatch:namespace",  # metrics have no ARN; limit the namespace
    # Lambda's active tracing sends segments as the function's role; X-Ray defines no resource type
    # for either call (its groups and sampling rules are other APIs), and no condition key narrows them.
    "xray:PutTraceSegments": None,
    "xray:PutTelemetryRecords": None,
}

# What a function's role must grant for Lambda itself: writing to the function's log group (no
# CreateLogGroup: the stack creates it), and with active tracing, sending traces (Lambda refuses to
# create a traced function whose role cannot).
LOG_WRITE_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
TRACE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# The API call each on-failure destination type needs; Lambda checks the role when it stores the
# destination, and SAM adds the grant only to a role it generates.
DESTINATION_ACTIONS = {"SQS": "sqs:SendMessage", "SNS": "sns:Publish", "Lambda": "lambda:InvokeFunction"}

# ARNs of resources a service creates outside the stack, which look like ones the stack creates.
SERVICE_CREATED_RESOURCES = {
    # SageMaker creates and names its endpoint's log group; naming the endpoint in the policy would
    # be a dependency cycle (the endpoint needs the role first).
    "log-group:/aws/sagemaker/Endpoints/*",
}

# For each resource type the stack can create: the service and resource prefix of its ARN.
ARN_SHAPES: dict[str, tuple[str, str]] = {
    "AWS::DynamoDB::Table": ("dynamodb", "table/"),
    "AWS::SQS::Queue": ("sqs", ""),
    "AWS::SNS::Topic": ("sns", ""),
    "AWS::SSM::Parameter": ("ssm", "parameter"),
    "AWS::Serverless::Function": ("lambda", "function:"),
    "AWS::Lambda::Function": ("lambda", "function:"),
    "AWS::Serverless::LayerVersion": ("lambda", "layer:"),
    "AWS::SageMaker::Endpoint": ("sagemaker", "endpoint/"),
    "AWS::SageMaker::EndpointConfig": ("sagemaker", "endpoint-config/"),
    "AWS::SageMaker::Model": ("sagemaker", "model/"),
    "AWS::IAM::Role": ("iam", "role/"),
    "AWS::IoT::Thing": ("iot", "thing/"),
    "AWS::IoT::TopicRule": ("iot", "rule/"),
    "AWS::IoT::Policy": ("iot", "policy/"),
    "AWS::Logs::LogGroup": ("logs", "log-group:"),
    "AWS::S3::Bucket": ("s3", ""),
    "AWS::KinesisFirehose::DeliveryStream": ("firehose", "deliverystream/"),
    "AWS::Glue::Database": ("glue", "database/"),
    "AWS::Glue::Table": ("glue", "table/"),
    "AWS::Athena::WorkGroup": ("athena", "workgroup/"),
}

DESTINATION_TYPES = {
    "SQS": {"AWS::SQS::Queue"},
    "SNS": {"AWS::SNS::Topic"},
    "Lambda": {"AWS::Serverless::Function", "AWS::Lambda::Function"},
    "EventBridge": {"AWS::Events::EventBus"},
}
MAX_ASYNC_RETRIES = 2  # Lambda's own ceiling; set explicitly so a change of default cannot raise it

# Resource policies the template writes: held to the same rules as the roles' statements.
RESOURCE_POLICY_TYPES = {"AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"}

THING = "${iot:Connection.Thing.ThingName}"
NAMESPACE = "${TopicNamespace}"
"""Every topic of the template is under the TopicNamespace parameter (test_template_topics.py)."""
OWN_TELEMETRY = f"topic/{NAMESPACE}/{THING}/telemetry"
LEGACY_TOPIC = "topic/iml_iotevents_data"
DEVICE_ACTIONS = {"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"}
# What a device may listen to: operators' actions for its motor, and its motor's alarm events.
OWN_INBOX = {"actions", "alarms"}

Template = dict[str, Any]
When = tuple[str, ...]  # the conditions under which a value applies; "!Name" when Name is false


def load_template(path: Path = TEMPLATE_PATH) -> Template:
    """The template as plain data, short-form tags (!Ref, !Sub, !GetAtt, !If) in their long form."""
    return parse(path.read_text())


TEMPLATE = load_template()


def problems_when_broken(rule: Callable[[Template], list[str]], breakage: Callable[[Template], None]) -> list[str]:
    """What `rule` reports on a copy of the template that `breakage` has broken on purpose."""
    broken = copy.deepcopy(TEMPLATE)
    breakage(broken)
    return rule(broken)


# ------------------------------------------------------------------ walking the template


def resources(template: Template, *types: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template["Resources"].items():
        if resource["Type"] in types:
            yield name, resource


def function_property(template: Template, function: dict[str, Any], key: str) -> Any:
    """A function's property as SAM makes it from the function's and Globals': the function's value, a map merged
    into the one it inherits (its keys winning, nested maps merged too), else the inherited one."""
    return _inherit(template.get("Globals", {}).get("Function", {}).get(key), function.get("Properties", {}).get(key))


def _inherit(inherited: Any, own: Any) -> Any:
    if own is None:
        return inherited
    if isinstance(own, dict) and isinstance(inherited, dict) and not _is_intrinsic(own):
        return {key: _inherit(inherited.get(key), own.get(key)) for key in {**inherited, **own}}
    return own


def _is_intrinsic(node: dict[str, Any]) -> bool:
    return len(node) == 1 and next(iter(node)).startswith(("Fn::", "Ref"))


def may_trace(template: Template, function: dict[str, Any]) -> bool:
    """Whether the function may run with active tracing: Tracing Active, or a parameter that allows it."""
    tracing = function_property(template, function, "Tracing")
    parameter = template["Parameters"].get(direct_reference(tracing) or "", {})
    return bool(tracing == "Active" or "Active" in parameter.get("AllowedValues", []))


def alternatives(node: Any, when: When = ()) -> list[tuple[Any, When]]:
    """Every value a node can take, with the conditions under which it takes it."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        condition, if_true, if_false = node["Fn::If"]
        return alternatives(if_true, (*when, condition)) + alternatives(if_false, (*when, f"!{condition}"))
    if node == {"Ref": "AWS::NoValue"}:
        return []
    return [(node, when)]


def each(node: Any, when: When = ()) -> Iterator[tuple[Any, When]]:
    """The items of a property that takes one value or a list, through any Fn::If on the way."""
    for value, value_when in alternatives(node, when):
        if isinstance(value, list):
            for item in value:
                yield from alternatives(item, value_when)
        else:
            yield value, value_when


def policy_documents(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, policy document) for every permission policy the template writes out."""
    for name, resource in template["Resources"].items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::IAM::Role":
            for policy, _ in each(properties.get("Policies", [])):
                yield f"{name} (policy {policy.get('PolicyName')})", policy["PolicyDocument"]
        elif kind in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IoT::Policy", *RESOURCE_POLICY_TYPES}:
            yield name, properties["PolicyDocument"]
        elif kind == "AWS::Serverless::Function":
            for index, (policy, _) in enumerate(each(properties.get("Policies", []))):
                if isinstance(policy, dict) and "Statement" in policy:
                    yield f"{name} (Policies[{index}])", policy


def statements(template: Template) -> Iterator[tuple[str, dict[str, Any], When]]:
    for label, document in policy_documents(template):
        for index, (statement, when) in enumerate(each(document["Statement"])):
            yield f"{label} statement {statement.get('Sid', index)}", statement, when


def role_grants(role_name: str, role: dict[str, Any]) -> Iterator[tuple[str, set[str], list[Any]]]:
    """(where, actions, resources) of each Allow statement in a role's inline policies."""
    for policy, _ in each(role.get("Properties", {}).get("Policies", [])):
        for index, (statement, _) in enumerate(each(policy["PolicyDocument"]["Statement"])):
            if statement.get("Effect") != "Allow":
                continue
            where = f"{role_name} (policy {policy.get('PolicyName')}) statement {statement.get('Sid', index)}"
            actions = {action for action, _ in each(statement.get("Action", [])) if isinstance(action, str)}
            yield where, actions, [resource for resource, _ in each(statement.get("Resource", []))]


def get_att_arn(name: str | None) -> dict[str, Any]:
    """`!GetAtt name.Arn` as the template loader reads it."""
    return {"Fn::GetAtt": [name, "Arn"]}


def arn_text(node: Any) -> str | None:
    """The ARN as written (a literal or an Fn::Sub pattern); None for a Ref or GetAtt."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and "Fn::Sub" in node:
        sub = node["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return None


def split_arn(text: str) -> tuple[str, str, str, str]:
    """(service, region, account, resource) of an ARN pattern, ${...} variables kept whole."""
    # Variables hold colons (${AWS::Region}); hide them while splitting on the ARN's colons.
    hidden = re.sub(r"\$\{[^}]*\}", lambda match: match.group(0).replace(":", "\0"), text)
    parts = hidden.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return "", "", "", text
    _, _, service, region, account, resource = (part.replace("\0", ":") for part in parts)
    return service, region, account, resource


def direct_reference(node: Any) -> str | None:
    """The logical id a Ref or Fn::GetAtt names, else None."""
    if isinstance(node, dict) and "Ref" in node:
        return str(node["Ref"])
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        target = node["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else target.split(".")[0])
    return None


def referenced_names(node: Any) -> set[str]:
    """Logical ids and parameters a value mentions, through Ref, GetAtt and Sub variables."""
    names: set[str] = set()
    if isinstance(node, list):
        for item in node:
            names |= referenced_names(item)
    elif isinstance(node, dict):
        reference = direct_reference(node)
        if reference:
            names.add(reference)
        elif "Fn::Sub" in node:
            sub = node["Fn::Sub"]
            pattern, local = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
            for variable in re.findall(r"\$\{([^!}][^}]*)\}", pattern):
                name = variable.split(".")[0]
                if name not in local and not name.startswith("AWS::"):
                    names.add(name)
            names |= referenced_names(list(local.values()))
        else:
            names |= referenced_names(list(node.values()))
    return names


# ------------------------------------------------------------------ the rules


def action_problems(template: Template) -> list[str]:
    """Each statement names the API calls it allows: no "*", no "svc:*", no family wildcards ("svc:Get*").

    Only a Deny may use a wildcard: there it widens the refusal and grants nothing (the queues' TLS
    policies deny "sqs:*").
    """
    problems = []
    for where, statement, _ in statements(template):
        for key in ("NotAction", "NotResource"):
            if key in statement:
                problems.append(f"{where}: {key} allows everything it does not list")
        for action, _ in each(statement.get("Action", [])):
            if not isinstance(action, str):
                problems.append(f"{where}: action {action!r} is not a literal name")
            elif "*" in action and statement.get("Effect") != "Deny":
                problems.append(f"{where}: action {action!r} is a wildcard; name the calls it needs")
    return problems


def resource_problems(template: Template) -> list[str]:
    """Resource "*" only for actions AWS cannot scope; ARNs never wildcard a region, account or id."""
    problems = []
    for where, statement, _ in statements(template):
        if statement.get("Effect") != "Allow":
            continue
        actions = [action for action, _ in each(statement.get("Action", []))]
        condition_keys = {key for block in statement.get("Condition", {}).values() for key in block}
        for resource, _ in each(statement.get("Resource", [])):
            if resource == "*":
                for action in actions:
                    if action not in UNSCOPABLE_ACTIONS:
                        problems.append(f"{where}: {action} on '*'; scope it to the resource's ARN")
                    elif (required := UNSCOPABLE_ACTIONS[action]) and required not in condition_keys:
                        problems.append(f"{where}: {action} on '*' without a {required} condition")
                continue
            text = arn_text(resource)
            if text is None:
                continue  # a Ref or GetAtt: stack_reference_problems checks what it names
            _, region, account, resource_part = split_arn(text)
            if "*" in region or "*" in account:
                problems.append(f"{where}: {text} matches other regions or accounts")
            resource_id = re.split(r"[/:]", resource_part, maxsplit=1)[-1]
            if resource_part == "*" or resource_id == "*":
                problems.append(f"{where}: {text} matches every resource of its type")
    return problems


def stack_reference_problems(template: Template) -> list[str]:
    """A resource the stack creates is named by !GetAtt/!Ref/!Sub of it, never retyped by hand."""
    declared = {name: resource["Type"] for name, resource in template["Resources"].items()}
    parameters = set(template.get("Parameters", {}))
    problems = []
    for where, statement, _ in statements(template):
        for resource, _ in each(statement.get("Resource", [])):
            if resource == "*":
                continue
            reference = direct_reference(resource)
            if reference is not None:
                if reference not in declared and reference not in parameters:
                    problems.append(f"{where}: refers to {reference}, which the template does not declare")
                continue
            text = arn_text(resource)
            if text is None:
                problems.append(f"{where}: resource {resource!r} is neither an ARN nor a reference")
                continue
            service, _, _, resource_part = split_arn(text)
            if resource_part in SERVICE_CREATED_RESOURCES:
                continue
            kinds = {
                kind
                for kind, (arn_service, prefix) in ARN_SHAPES.items()
                if arn_service == service and resource_part.startswith(prefix)
            }
            if not kinds & set(declared.values()):
                continue  # the stack creates nothing this ARN could name
            names = referenced_names(resource)
            if not any(declared.get(name) in kinds or name in parameters for name in names):
                problems.append(
                    f"{where}: {text} names a {'/'.join(sorted(kinds & set(declared.values())))} "
                    "that the stack creates; use !GetAtt/!Ref of it (or ${Resource} in !Sub)"
                )
    return problems


def trust_problems(template: Template) -> list[str]:
    """Roles are assumed only by a named AWS service, and only on behalf of this account."""
    problems = []
    for name, role in resources(template, "AWS::IAM::Role"):
        document = role["Properties"]["AssumeRolePolicyDocument"]
        for statement, _ in each(document["Statement"]):
            principal = statement.get("Principal", {})
            if not isinstance(principal, dict) or set(principal) != {"Service"}:
                problems.append(f"{name}: trusts {principal!r}; only an AWS service should assume it")
            conditions = {
                key: value for block in statement.get("Condition", {}).values() for key, value in block.items()
            }
            if principal == {"Service": "firehose.amazonaws.com"}:
                # Firehose documents its own guard: it assumes a role with the stream's account as external id.
                if conditions.get("sts:ExternalId") != {"Ref": "AWS::AccountId"}:
                    problems.append(f"{name}: Firehose should assume it only with this account as sts:ExternalId")
            elif not conditions.keys() & {"aws:SourceAccount", "aws:SourceArn"}:
                problems.append(f"{name}: no aws:SourceAccount/aws:SourceArn condition (confused deputy)")
    return problems


def function_role_problems(template: Template) -> list[str]:
    """Each function runs as a role of the stack that writes logs only to the function's own group.

    A function without `Role`, or with SAM `Policies`, gets a role SAM generates, with the managed
    policies AWSLambdaBasicExecutionRole and AWSXrayWriteOnlyAccess (logs and traces on "*").
    """
    roles = dict(resources(template, "AWS::IAM::Role"))
    log_groups = dict(resources(template, "AWS::Logs::LogGroup"))
    problems = []
    for name, function in resources(template, "AWS::Serverless::Function"):
        if function_property(template, function, "Policies"):
            problems.append(f"{name}: SAM Policies; write the statements into the function's own role instead")
        role_ref = function_property(template, function, "Role")
        role_name = direct_reference(role_ref)
        if role_name not in roles or role_ref != get_att_arn(role_name):
            problems.append(f"{name}: Role {role_ref!r} is not !GetAtt <role>.Arn of a role in the stack")
            continue
        logging = function_property(template, function, "LoggingConfig") or {}
        log_group = direct_reference(logging.get("LogGroup"))
        if log_group not in log_groups:
            problems.append(f"{name}: LoggingConfig.LogGroup is not !Ref of a log group in the stack")
        granted: dict[str, list[Any]] = {}
        for where, actions, targets in role_grants(role_name, roles[role_name]):
            for action in actions:
                granted.setdefault(action, []).extend(targets)
            log_actions = {action for action in actions if action.startswith("logs:")}
            if "logs:CreateLogGroup" in log_actions:
                problems.append(f"{where}: logs:CreateLogGroup; the stack creates {name}'s log group")
            for target in targets if log_actions else []:
                if target != get_att_arn(log_group):
                    problems.append(
                        f"{where}: {sorted(log_actions)} on {target!r}; {name} may write only to its own "
                        f"log group (!GetAtt {log_group}.Arn)"
                    )
        for action in sorted(LOG_WRITE_ACTIONS):
            if get_att_arn(log_group) not in granted.get(action, []):
                problems.append(f"{role_name}: no {action} on {name}'s log group; {name} could not log")
        if may_trace(template, function):
            for action in sorted(TRACE_ACTIONS - set(granted)):
                problems.append(f"{role_name}: no {action}; Lambda refuses active tracing for {name} without it")
        config = function_property(template, function, "EventInvokeConfig") or {}
        on_failure = config.get("DestinationConfig", {}).get("OnFailure") or {}
        needed = DESTINATION_ACTIONS.get(on_failure.get("Type", ""))
        if needed and on_failure.get("Destination") not in granted.get(needed, []):
            problems.append(f"{role_name}: no {needed} on {name}'s on-failure destination; Lambda would refuse it")
    return problems


def managed_policy_problems(template: Template) -> list[str]:
    """No role attaches a managed policy: every grant is a statement in the template, checked here."""
    return [
        f"{name}: attaches ManagedPolicyArns {role['Properties']['ManagedPolicyArns']!r}; write scoped statements"
        for name, role in resources(template, "AWS::IAM::Role")
        if role.get("Properties", {}).get("ManagedPolicyArns")
    ]


def iot_resource(node: Any) -> str | None:
    """The part of an IoT ARN after this account and region, with ${!var} as IoT will read it."""
    text = arn_text(node)
    prefix = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"
    if text is None or not text.startswith(prefix):
        return None
    return text.removeprefix(prefix).replace("${!", "${")


def device_policy_problems(template: Template) -> list[str]:
    """A device connects only as its own thing and publishes only its own telemetry."""
    problems = []
    policies = list(resources(template, "AWS::IoT::Policy"))
    if not policies:
        problems.append("no AWS::IoT::Policy for the devices")
    for name, policy in policies:
        published: set[tuple[str, When]] = set()
        for statement, _ in each(policy["Properties"]["PolicyDocument"]["Statement"]):
            actions = {action for action, _ in each(statement.get("Action", []))}
            if statement.get("Effect") != "Allow":
                continue
            if unexpected := actions - DEVICE_ACTIONS:
                problems.append(f"{name}: a device has no use for {sorted(unexpected)}")
            for resource, when in each(statement.get("Resource", [])):
                target = iot_resource(resource)
                if target is None:
                    problems.append(f"{name}: {resource!r} is not an IoT ARN in this account and region")
                    continue
                if "iot:Connect" in actions:
                    if target != f"client/{THING}":
                        problems.append(f"{name}: Connect on {target}; a device may connect only as {THING}")
                    attached = statement.get("Condition", {}).get("Bool", {})
                    if str(attached.get("iot:Connection.Thing.IsAttached", "")).lower() != "true":
                        problems.append(f"{name}: Connect without the iot:Connection.Thing.IsAttached condition")
                if "iot:Publish" in actions:
                    published.add((target, when))
                # Subscribe is checked against a topic filter, Receive against the topic of a message.
                for action, kind in (("iot:Subscribe", "topicfilter"), ("iot:Receive", "topic")):
                    own = {f"{kind}/{NAMESPACE}/{THING}/{inbox}" for inbox in OWN_INBOX}
                    if action in actions and target not in own:
                        problems.append(f"{name}: {action} on {target}; a device may only {action} {sorted(own)}")
        allowed = {(OWN_TELEMETRY, ()), (LEGACY_TOPIC, ("LegacyTopicAllowed",))}
        for target, when in sorted(published - allowed):
            condition = f" (when {' and '.join(when)})" if when else ""
            problems.append(
                f"{name}: Publish to {target}{condition}; a device may publish only {OWN_TELEMETRY}, "
                f"and {LEGACY_TOPIC} only under LegacyTopicAllowed"
            )
        if (OWN_TELEMETRY, ()) not in published:
            problems.append(f"{name}: a device cannot publish its own telemetry ({OWN_TELEMETRY})")
    return problems


# Everything a device may do, as (action, resource as IoT reads it, conditions it depends on).
DEVICE_GRANTS = {
    ("iot:Connect", f"client/{THING}", ()),
    ("iot:Publish", OWN_TELEMETRY, ()),
    ("iot:Publish", LEGACY_TOPIC, ("LegacyTopicAllowed",)),
    ("iot:Subscribe", f"topicfilter/{NAMESPACE}/{THING}/actions", ()),
    ("iot:Subscribe", f"topicfilter/{NAMESPACE}/{THING}/alarms", ()),
    ("iot:Receive", f"topic/{NAMESPACE}/{THING}/actions", ()),
    ("iot:Receive", f"topic/{NAMESPACE}/{THING}/alarms", ()),
}


def device_grant_problems(template: Template) -> list[str]:
    """The device policy grants exactly DEVICE_GRANTS: nothing missing (the simulator needs it), nothing more."""
    problems = []
    for name, policy in resources(template, "AWS::IoT::Policy"):
        granted: set[tuple[str, str | None, When]] = set()
        for statement, when in each(policy["Properties"]["PolicyDocument"]["Statement"]):
            if statement.get("Effect") != "Allow":
                problems.append(f"{name}: a {statement.get('Effect')} statement; the policy only allows")
                continue
            for action, action_when in each(statement.get("Action", []), when):
                for resource, resource_when in each(statement.get("Resource", []), action_when):
                    granted.add((action, iot_resource(resource), resource_when))
        problems += [f"{name}: also grants {grant}" for grant in sorted(granted - DEVICE_GRANTS, key=str)]
        problems += [f"{name}: does not grant {grant}" for grant in sorted(DEVICE_GRANTS - granted, key=str)]
    return problems


def topic_rule_problems(template: Template) -> list[str]:
    """Every rule parks what it cannot deliver, and every Lambda it calls lets only it do so."""
    problems = []
    permissions = list(resources(template, "AWS::Lambda::Permission"))
    for name, rule in resources(template, "AWS::IoT::TopicRule"):
        payload = rule["Properties"]["TopicRulePayload"]
        if not payload.get("ErrorAction"):
            problems.append(f"{name}: no ErrorAction; a message it cannot deliver is lost")
        for action, _ in each(payload.get("Actions", [])):
            if "Lambda" not in action:
                continue
            function = direct_reference(action["Lambda"]["FunctionArn"])
            granted = [
                permission_name
                for permission_name, permission in permissions
                if direct_reference(permission["Properties"]["FunctionName"]) == function
                and permission["Properties"].get("Principal") == "iot.amazonaws.com"
                and permission["Properties"].get("Action") == "lambda:InvokeFunction"
                and direct_reference(permission["Properties"].get("SourceArn")) == name
            ]
            if not granted:
                problems.append(
                    f"{name}: no AWS::Lambda::Permission lets it (SourceArn !GetAtt {name}.Arn) invoke {function}"
                )
    for permission_name, permission in permissions:
        if permission["Properties"].get("Principal") == "iot.amazonaws.com" and not permission["Properties"].get(
            "SourceArn"
        ):
            problems.append(f"{permission_name}: lets any IoT rule of any account invoke; add a SourceArn")
    return problems


def invoke_config_problems(template: Template) -> list[str]:
    """Every function retries a bounded number of times, then sends the event somewhere to be seen."""
    declared = {name: resource["Type"] for name, resource in template["Resources"].items()}
    problems = []
    for name, function in resources(template, "AWS::Serverless::Function"):
        config = function_property(template, function, "EventInvokeConfig")
        if not config:
            problems.append(f"{name}: no EventInvokeConfig; failed async events are dropped")
            continue
        retries = config.get("MaximumRetryAttempts")
        if not isinstance(retries, int) or not 0 <= retries <= MAX_ASYNC_RETRIES:
            problems.append(f"{name}: MaximumRetryAttempts is {retries!r}; set 0..{MAX_ASYNC_RETRIES}")
        age = config.get("MaximumEventAgeInSeconds")
        if age is not None and not (isinstance(age, int) and 60 <= age <= 21600):
            problems.append(f"{name}: MaximumEventAgeInSeconds {age!r} is outside 60..21600")
        on_failure = config.get("DestinationConfig", {}).get("OnFailure")
        if not on_failure:
            problems.append(f"{name}: no OnFailure destination")
            continue
        target = direct_reference(on_failure.get("Destination"))
        expected = DESTINATION_TYPES.get(on_failure.get("Type"), set())
        if declared.get(target) not in expected:
            problems.append(
                f"{name}: OnFailure {on_failure.get('Type')} destination {target!r} is not a {expected} in the stack"
            )
    return problems


def logging_problems(template: Template) -> list[str]:
    """Every function logs JSON, its application logs at the Powertools level and Lambda's own at PlatformLogLevel.

    Lambda filters by level only JSON logs, and counts a line without a level (the EMF metrics Powertools
    prints) as INFO: an application level above INFO would drop every metric the functions publish.
    """
    powertools_level = function_property(template, {}, "Environment")["Variables"]["POWERTOOLS_LOG_LEVEL"]
    problems = []
    for name, function in resources(template, "AWS::Serverless::Function"):
        logging = function_property(template, function, "LoggingConfig") or {}
        if logging.get("LogFormat") != "JSON":
            problems.append(
                f"{name}: LogFormat is {logging.get('LogFormat')!r}; Lambda filters levels of JSON logs only"
            )
        if logging.get("ApplicationLogLevel") not in ("INFO", "DEBUG", "TRACE"):
            problems.append(f"{name}: ApplicationLogLevel {logging.get('ApplicationLogLevel')!r} drops the EMF metrics")
        elif logging.get("ApplicationLogLevel") != powertools_level:
            problems.append(f"{name}: ApplicationLogLevel differs from POWERTOOLS_LOG_LEVEL {powertools_level!r}")
        if direct_reference(logging.get("SystemLogLevel")) != "PlatformLogLevel":
            problems.append(f"{name}: SystemLogLevel is not !Ref PlatformLogLevel")
    return problems


def handler_problems(template: Template, root: Path = ROOT) -> list[str]:
    """Every function's CodeUri and Handler name a file and a top-level function in the repo."""
    problems = []
    for name, function in resources(template, "AWS::Serverless::Function"):
        code_uri = root / str(function_property(template, function, "CodeUri"))
        handler = str(function_property(template, function, "Handler"))
        module, _, entry_point = handler.rpartition(".")
        path = code_uri / (module.replace(".", "/") + ".py")
        if not path.is_file():
            problems.append(f"{name}: Handler {handler} needs {path.relative_to(root)}, which does not exist")
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        defined = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
        if entry_point not in defined:
            problems.append(f"{name}: {path.relative_to(root)} defines no top-level function {entry_point}")
        elif len(defined[entry_point].args.args) != 2:
            problems.append(f"{name}: {entry_point} in {path.relative_to(root)} must take (event, context)")
    return problems


def layer_problems(template: Template, root: Path = ROOT) -> list[str]:
    """Layers are built for the runtime and architecture of the functions that use them."""
    problems = []
    layers = dict(resources(template, "AWS::Serverless::LayerVersion"))
    for name, function in resources(template, "AWS::Serverless::Function"):
        runtime = function_property(template, function, "Runtime")
        architectures = function_property(template, function, "Architectures") or ["x86_64"]
        for layer_ref, _ in each(function_property(template, function, "Layers") or []):
            layer_name = direct_reference(layer_ref)
            if layer_name not in layers:
                continue  # a layer from outside the stack
            layer = layers[layer_name]
            properties, metadata = layer["Properties"], layer.get("Metadata", {})
            if runtime not in properties.get("CompatibleRuntimes", []) or metadata.get("BuildMethod") != runtime:
                problems.append(f"{layer_name}: not built for {runtime}, which {name} runs")
            if metadata.get("BuildArchitecture", "x86_64") not in architectures:
                problems.append(
                    f"{layer_name}: built for {metadata.get('BuildArchitecture')}, {name} runs {architectures}"
                )
            if not (root / str(properties["ContentUri"])).is_dir():
                problems.append(f"{layer_name}: ContentUri {properties['ContentUri']} does not exist")
    return problems


def as_list(node: str | list[str]) -> list[str]:
    """DependsOn and the like: one name or a list of them."""
    return [node] if isinstance(node, str) else list(node)


def dependency_cycle_problems(template: Template) -> list[str]:
    """No resource depends on itself through others (cfn-lint sees such a cycle only after SAM's transform).

    The classic one here: a log group named `/aws/lambda/${Function}` whose ARN the function's role
    grants, while the function needs the role first.
    """
    declared = template["Resources"]
    edges = {
        name: sorted(
            (referenced_names(resource.get("Properties", {})) | set(as_list(resource.get("DependsOn", []))))
            & set(declared)
        )
        for name, resource in declared.items()
    }
    problems: list[str] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            problems.append(f"{name}: dependency cycle {' -> '.join(cycle)}")
            return
        if name in done:
            return
        for dependency in edges[name]:
            visit(dependency, [*path, name])
        done.add(name)

    for name in sorted(declared):
        visit(name, [])
    return problems


RULES: dict[str, Callable[[Template], list[str]]] = {
    "action": action_problems,
    "resource": resource_problems,
    "stack_reference": stack_reference_problems,
    "trust": trust_problems,
    "function_role": function_role_problems,
    "managed_policy": managed_policy_problems,
    "device_policy": device_policy_problems,
    "device_grants": device_grant_problems,
    "topic_rule": topic_rule_problems,
    "invoke_config": invoke_config_problems,
    "logging": logging_problems,
    "handler": handler_problems,
    "layer": layer_problems,
    "dependency_cycle": dependency_cycle_problems,
}


# ------------------------------------------------------------------ the template obeys them


def test_the_template_has_the_resources_these_rules_are_about() -> None:
    kinds = {resource["Type"] for resource in TEMPLATE["Resources"].values()}
    assert {"AWS::Serverless::Function", "AWS::IoT::TopicRule", "AWS::IoT::Policy", "AWS::IAM::Role"} <= kinds
    assert len(list(statements(TEMPLATE))) >= 10


def test_every_policy_statement_names_the_actions_it_allows() -> None:
    problems = action_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_no_statement_allows_every_resource_where_aws_lets_it_be_scoped() -> None:
    problems = resource_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_resources_created_by_the_stack_are_referenced_not_retyped() -> None:
    problems = stack_reference_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_roles_trust_only_an_aws_service_acting_for_this_account() -> None:
    problems = trust_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_only_actions_aws_cannot_scope_are_granted_on_every_resource() -> None:
    on_everything = {
        action
        for _, statement, _ in statements(TEMPLATE)
        if statement.get("Effect") == "Allow" and "*" in [target for target, _ in each(statement.get("Resource", []))]
        for action, _ in each(statement.get("Action", []))
    }

    assert on_everything == set(UNSCOPABLE_ACTIONS)
    # The allow-list itself stays this short; a new entry must say here why AWS cannot scope it.
    assert UNSCOPABLE_ACTIONS == {
        "ecr:GetAuthorizationToken": None,
        "cloudwatch:PutMetricData": "cloudwatch:namespace",
        "xray:PutTraceSegments": None,
        "xray:PutTelemetryRecords": None,
    }


def test_functions_run_as_their_own_roles_and_log_only_to_their_own_groups() -> None:
    problems = function_role_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_no_role_attaches_a_managed_policy() -> None:
    problems = managed_policy_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_a_device_connects_as_its_own_thing_and_publishes_only_its_own_telemetry() -> None:
    problems = device_policy_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_a_device_may_connect_publish_its_telemetry_and_hear_its_own_actions_and_alarms_nothing_else() -> None:
    problems = device_grant_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_the_legacy_topic_is_closed_unless_the_stack_is_told_to_open_it() -> None:
    assert TEMPLATE["Conditions"]["LegacyTopicAllowed"] == {"Fn::Equals": [{"Ref": "AllowLegacyTopic"}, "true"]}
    assert TEMPLATE["Parameters"]["AllowLegacyTopic"]["Default"] == "false"


def test_every_topic_rule_has_an_error_action_and_invokes_lambda_only_through_its_own_permission() -> None:
    problems = topic_rule_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_every_function_bounds_its_retries_and_has_an_on_failure_destination() -> None:
    problems = invoke_config_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_every_function_logs_json_with_its_metrics_kept_and_lambdas_own_lines_at_the_chosen_level() -> None:
    problems = logging_problems(TEMPLATE)
    assert not problems, "\n".join(problems)
    parameter = TEMPLATE["Parameters"]["PlatformLogLevel"]
    # WARN by default: no START and REPORT lines, half of what a reading logs (docs/costs.md)
    assert parameter["Default"] == "WARN"
    assert set(parameter["AllowedValues"]) == {"WARN", "INFO", "DEBUG"}


def test_tracing_is_off_unless_the_stack_is_told_and_every_role_may_send_traces_when_it_is() -> None:
    parameter = TEMPLATE["Parameters"]["FunctionTracing"]
    assert TEMPLATE["Globals"]["Function"]["Tracing"] == {"Ref": "FunctionTracing"}
    # PassThrough by default: no traces from IoT rules; Active a stack update away (docs/costs.md, "Traces")
    assert (parameter["Default"], set(parameter["AllowedValues"])) == ("PassThrough", {"PassThrough", "Active"})
    assert all(may_trace(TEMPLATE, function) for _, function in resources(TEMPLATE, "AWS::Serverless::Function"))


def test_every_function_handler_exists_in_the_repo() -> None:
    problems = handler_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_the_shared_layer_is_built_for_the_functions_runtime_and_architecture() -> None:
    problems = layer_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_no_resource_depends_on_itself() -> None:
    problems = dependency_cycle_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ and each rule can fail


def _statement(template: Template, resource: str, sid: str) -> dict[str, Any]:
    for where, statement, _ in statements(template):
        if where.startswith(f"{resource} ") and statement.get("Sid") == sid:
            return statement
    raise LookupError(f"{resource} has no statement {sid}")


def _without_trace_grants(template: Template) -> None:
    _statement(template, "InferenceRole", "Traces")["Action"] = ["logs:PutLogEvents"]


def _with_wildcard_action(template: Template) -> None:
    _statement(template, "InferenceRole", "MotorState")["Action"] = "dynamodb:*"


def _with_star_resource(template: Template) -> None:
    _statement(template, "AlertRole", "SendAlerts")["Resource"] = "*"


def _with_logs_on_every_log_group(template: Template) -> None:
    _statement(template, "InferenceRole", "OwnLogs")["Resource"] = "*"


def _with_logs_on_another_functions_group(template: Template) -> None:
    _statement(template, "OperatorActionRole", "OwnLogs")["Resource"] = {"Fn::GetAtt": ["AlertLogGroup", "Arn"]}


def _with_create_log_group(template: Template) -> None:
    _statement(template, "AlertRole", "OwnLogs")["Action"].append("logs:CreateLogGroup")


def _without_failure_queue_grant(template: Template) -> None:
    statement = _statement(template, "AlertRole", "ParkFailedEvents")
    template["Resources"]["AlertRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].remove(statement)


def _with_retyped_table_arn(template: Template) -> None:
    _statement(template, "OperatorActionRole", "MotorState")["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/motor-state"
    }


def _with_open_trust(template: Template) -> None:
    template["Resources"]["RuleErrorRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] = {
        "AWS": "*"
    }


def _with_firehose_trusted_for_any_account(template: Template) -> None:
    statement = template["Resources"]["AlarmArchiveDeliveryRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    del statement[0]["Condition"]


def _with_retyped_stream_arn(template: Template) -> None:
    statement = template["Resources"]["ArchiveWriterRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statement[0]["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:firehose:${AWS::Region}:${AWS::AccountId}:deliverystream/telemetry"
    }


def _with_sam_policies(template: Template) -> None:
    template["Resources"]["AlertFunction"]["Properties"]["Policies"] = ["AmazonSNSFullAccess"]


def _without_own_role(template: Template) -> None:
    del template["Resources"]["InferenceFunction"]["Properties"]["Role"]


def _with_managed_policy(template: Template) -> None:
    template["Resources"]["AlertRole"]["Properties"]["ManagedPolicyArns"] = [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
    ]


def _with_device_publishing_everywhere(template: Template) -> None:
    statement = template["Resources"]["DevicePolicy"]["Properties"]["PolicyDocument"]["Statement"][1]
    statement["Resource"][0] = {
        "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/${TopicNamespace}/*"
    }


def _with_unconditional_legacy_topic(template: Template) -> None:
    statement = template["Resources"]["DevicePolicy"]["Properties"]["PolicyDocument"]["Statement"][1]
    statement["Resource"][1] = {
        "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/iml_iotevents_data"
    }


def _with_any_client_id(template: Template) -> None:
    statement = template["Resources"]["DevicePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    statement["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:client/*"}


def _device_statement(template: Template, action: str) -> dict[str, Any]:
    for statement in template["Resources"]["DevicePolicy"]["Properties"]["PolicyDocument"]["Statement"]:
        if statement["Action"] == action:
            found: dict[str, Any] = statement
            return found
    raise LookupError(f"DevicePolicy has no {action} statement")


def _iot_arn(resource: str) -> dict[str, str]:
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:iot:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"}


def _with_device_receiving_every_motors_actions(template: Template) -> None:
    _device_statement(template, "iot:Receive")["Resource"][0] = _iot_arn("topic/${TopicNamespace}/*/actions")


def _with_subscribe_on_a_topic_instead_of_a_filter(template: Template) -> None:
    _device_statement(template, "iot:Subscribe")["Resource"][0] = _iot_arn(
        "topic/${TopicNamespace}/${!iot:Connection.Thing.ThingName}/actions"
    )


def _without_the_actions_subscription(template: Template) -> None:
    _device_statement(template, "iot:Subscribe")["Resource"].pop(0)


def _with_device_subscribing_to_its_telemetry(template: Template) -> None:
    _device_statement(template, "iot:Subscribe")["Resource"].append(
        _iot_arn("topicfilter/${TopicNamespace}/${!iot:Connection.Thing.ThingName}/telemetry")
    )


def _with_queue_policy_allowing_everything(template: Template) -> None:
    statement = template["Resources"]["RuleErrorQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    statement["Effect"] = "Allow"


def _without_error_action(template: Template) -> None:
    del template["Resources"]["AlarmRule"]["Properties"]["TopicRulePayload"]["ErrorAction"]


def _without_source_arn(template: Template) -> None:
    del template["Resources"]["ActionRulePermission"]["Properties"]["SourceArn"]


def _without_retry_bound(template: Template) -> None:
    del template["Resources"]["InferenceFunction"]["Properties"]["EventInvokeConfig"]["MaximumRetryAttempts"]


def _without_on_failure(template: Template) -> None:
    del template["Resources"]["AlertFunction"]["Properties"]["EventInvokeConfig"]["DestinationConfig"]


def _with_missing_handler(template: Template) -> None:
    template["Resources"]["OperatorActionFunction"]["Properties"]["Handler"] = "app.no_such_handler"


def _with_layer_for_other_architecture(template: Template) -> None:
    template["Resources"]["SharedLayer"]["Metadata"]["BuildArchitecture"] = "x86_64"


def _with_log_group_named_after_its_function(template: Template) -> None:
    properties = template["Resources"]["InferenceLogGroup"]["Properties"]
    properties["LogGroupName"] = {"Fn::Sub": "/aws/lambda/${InferenceFunction}"}


def _with_metrics_filtered_out(template: Template) -> None:
    template["Resources"]["OfflineCheckFunction"]["Properties"]["LoggingConfig"]["ApplicationLogLevel"] = "WARN"


def _with_text_logs(template: Template) -> None:
    template["Resources"]["AlertFunction"]["Properties"]["LoggingConfig"]["LogFormat"] = "Text"


@pytest.mark.parametrize(
    ("rule", "breakage", "culprit"),
    [
        ("action", _with_wildcard_action, "InferenceRole"),
        ("resource", _with_star_resource, "AlertRole"),
        ("resource", _with_logs_on_every_log_group, "InferenceRole"),
        ("stack_reference", _with_retyped_table_arn, "OperatorActionRole"),
        ("trust", _with_open_trust, "RuleErrorRole"),
        ("trust", _with_firehose_trusted_for_any_account, "AlarmArchiveDeliveryRole"),
        ("stack_reference", _with_retyped_stream_arn, "ArchiveWriterRole"),
        ("function_role", _with_sam_policies, "AlertFunction"),
        ("function_role", _without_own_role, "InferenceFunction"),
        ("function_role", _with_logs_on_every_log_group, "InferenceRole"),
        ("function_role", _with_logs_on_another_functions_group, "OperatorActionRole"),
        ("function_role", _with_create_log_group, "AlertRole"),
        ("function_role", _without_failure_queue_grant, "AlertRole"),
        ("function_role", _without_trace_grants, "InferenceRole"),
        ("managed_policy", _with_managed_policy, "AlertRole"),
        ("device_policy", _with_device_publishing_everywhere, "DevicePolicy"),
        ("device_policy", _with_unconditional_legacy_topic, "DevicePolicy"),
        ("device_policy", _with_any_client_id, "DevicePolicy"),
        ("device_policy", _with_device_receiving_every_motors_actions, "DevicePolicy"),
        ("device_policy", _with_subscribe_on_a_topic_instead_of_a_filter, "DevicePolicy"),
        ("device_grants", _without_the_actions_subscription, "DevicePolicy"),
        ("device_grants", _with_device_subscribing_to_its_telemetry, "DevicePolicy"),
        ("device_grants", _with_unconditional_legacy_topic, "DevicePolicy"),
        ("action", _with_queue_policy_allowing_everything, "RuleErrorQueuePolicy"),
        ("topic_rule", _without_error_action, "AlarmRule"),
        ("topic_rule", _without_source_arn, "ActionRule"),
        ("invoke_config", _without_retry_bound, "InferenceFunction"),
        ("invoke_config", _without_on_failure, "AlertFunction"),
        ("logging", _with_metrics_filtered_out, "OfflineCheckFunction"),
        ("logging", _with_text_logs, "AlertFunction"),
        ("handler", _with_missing_handler, "OperatorActionFunction"),
        ("layer", _with_layer_for_other_architecture, "SharedLayer"),
        ("dependency_cycle", _with_log_group_named_after_its_function, "InferenceLogGroup"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_each_rule_reports_a_template_broken_on_purpose(
    rule: str, breakage: Callable[[Template], None], culprit: str
) -> None:
    problems = problems_when_broken(RULES[rule], breakage)

    assert any(culprit in problem for problem in problems), f"{rule} rule missed it; it said: {problems}"


def test_the_archive_reads_the_stream_on_a_mapping_of_its_own_retried_until_the_records_leave_it() -> None:
    """Batched, ArchiveFunction archives what InferenceFunction decides, from the same shards in the same batches,
    whatever becomes of InferenceFunction's batches; a batch Firehose refuses is retried whole with no limit but
    the stream's retention, and its backlog is alarmed long before that."""
    resources_ = TEMPLATE["Resources"]
    inference = resources_["TelemetryStreamMapping"]["Properties"]
    archive = resources_["TelemetryArchiveMapping"]["Properties"]
    assert archive["FunctionName"] == {"Ref": "ArchiveFunction"}
    for same in (
        "EventSourceArn",
        "StartingPosition",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "DestinationConfig",
    ):
        assert archive[same] == inference[same], same
    assert (archive["MaximumRetryAttempts"], archive["MaximumRecordAgeInSeconds"]) == (-1, -1)
    assert archive["BisectBatchOnFunctionError"] is False
    assert "FunctionResponseTypes" not in archive  # the batch gets in whole, or is delivered again whole
    backlog = resources_["TelemetryArchiveBacklogAlarm"]["Properties"]
    assert (backlog["MetricName"], backlog["Dimensions"]) == (
        "IteratorAge",
        [{"Name": "FunctionName", "Value": {"Ref": "ArchiveFunction"}}],
    )
    retention_ms = resources_["TelemetryStream"]["Properties"]["RetentionPeriodHours"] * 3600 * 1000
    assert backlog["Threshold"] * 2 <= retention_ms  # time left to fix Firehose before a reading expires
    # The rules put readings into the archive only in direct mode: their role may, only then
    [statement] = resources_["ArchiveWriterRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    readings = [r for r in statement["Resource"] if "TelemetryArchiveStream" in json.dumps(r)]
    assert readings == [
        {"Fn::If": ["Direct", {"Fn::GetAtt": ["TelemetryArchiveStream", "Arn"]}, {"Ref": "AWS::NoValue"}]}
    ]
