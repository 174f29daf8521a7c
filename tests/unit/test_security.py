"""Data at rest and in transit, secrets and privacy: what template.yaml, the handlers and the repository promise.

Each template rule lists the problems it finds; the tests at the end of each part break the template
(or a handler's source) on purpose to prove the rule can fail.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local.cfn import load
from tests.conftest import FakeAws
from tests.support import ROOT, LambdaContext, load_event, load_handler
from tests.unit.test_template import (
    TEMPLATE,
    Template,
    direct_reference,
    each,
    function_property,
    handler_problems,
    problems_when_broken,
    resources,
)

# Every action an SNS topic policy may name (SNS refuses "sns:*" there: "action out of service
# scope"): docs.aws.amazon.com/sns/latest/dg/sns-access-policy-language-api-permissions-reference.html
SNS_TOPIC_POLICY_ACTIONS = {
    "sns:AddPermission",
    "sns:DeleteTopic",
    "sns:GetDataProtectionPolicy",
    "sns:GetTopicAttributes",
    "sns:ListSubscriptionsByTopic",
    "sns:ListTagsForResource",
    "sns:Publish",
    "sns:PutDataProtectionPolicy",
    "sns:RemovePermission",
    "sns:SetTopicAttributes",
    "sns:Subscribe",
}
# The statement SNS puts in every new topic's policy; a TopicPolicy replaces the policy, so the
# template repeats it. It is the only Allow a resource policy of the stack may hold.
SNS_DEFAULT_ACTIONS = {
    "sns:GetTopicAttributes",
    "sns:SetTopicAttributes",
    "sns:AddPermission",
    "sns:RemovePermission",
    "sns:DeleteTopic",
    "sns:Subscribe",
    "sns:ListSubscriptionsByTopic",
    "sns:Publish",
}

# SNS's AWS managed key: usable only through SNS, by principals of the account.
SNS_AWS_MANAGED_KEY = "alias/aws/sns"
# AWS services that publish to a topic of the stack on their own. They hold no IAM role of the
# account to be granted through, so the topic policy (and the topic's key policy) must name them;
# each is bound to this account (aws:SourceAccount) and to the sources it publishes for
# (aws:SourceArn): for CloudWatch, the alarms of this stack, whose names start with the stack's name.
SERVICE_PUBLISHERS = {
    "cloudwatch.amazonaws.com": (
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-*"
    ),
}
# What such a publisher needs of a customer managed key: SNS makes the message's data key for it.
SERVICE_KEY_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey*"}
THIS_ACCOUNT = {"Ref": "AWS::AccountId"}
ACCOUNT_ROOT = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}

# What a TLS-only policy must deny, per resource type: (policy type, property listing the targets, actions).
TLS_POLICIES = {
    "AWS::SQS::Queue": ("AWS::SQS::QueuePolicy", "Queues", {"sqs:*"}),
    "AWS::SNS::Topic": ("AWS::SNS::TopicPolicy", "Topics", SNS_TOPIC_POLICY_ACTIONS),
}


# ------------------------------------------------------------------ at rest


def encryption_problems(template: Template) -> list[str]:
    """Queues, topics and tables are encrypted at rest; tables can be restored to any second of 35 days."""
    problems = []
    for name, queue in resources(template, "AWS::SQS::Queue"):
        properties = queue.get("Properties", {})
        if properties.get("SqsManagedSseEnabled") is not True and not properties.get("KmsMasterKeyId"):
            problems.append(f"{name}: not encrypted at rest (SqsManagedSseEnabled: true, or KmsMasterKeyId)")
    keys = dict(resources(template, "AWS::KMS::Key"))
    for name, topic in resources(template, "AWS::SNS::Topic"):
        key = topic.get("Properties", {}).get("KmsMasterKeyId")
        # Either SNS's AWS managed key, or a customer managed key of this template, whose rotation
        # and key policy key_policy_problems checks; never a key the template cannot show.
        if not key:
            problems.append(f"{name}: not encrypted at rest (KmsMasterKeyId, e.g. alias/aws/sns)")
        elif key != SNS_AWS_MANAGED_KEY and direct_reference(key) not in keys:
            problems.append(
                f"{name}: KmsMasterKeyId {key!r} is neither {SNS_AWS_MANAGED_KEY} nor a key of this template"
            )
        elif (
            key != SNS_AWS_MANAGED_KEY
            and keys[str(direct_reference(key))]["Properties"].get("EnableKeyRotation") is not True
        ):
            problems.append(f"{name}: its key {direct_reference(key)} does not rotate (EnableKeyRotation: true)")
    for name, table in resources(template, "AWS::DynamoDB::Table"):
        properties = table.get("Properties", {})
        # SSEEnabled true: the AWS managed KMS key (aws/dynamodb), whose use CloudTrail logs; false or
        # absent: an AWS owned key, invisible to the account.
        if properties.get("SSESpecification", {}).get("SSEEnabled") is not True:
            problems.append(f"{name}: SSESpecification.SSEEnabled is not true (AWS managed KMS key)")
        if properties.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{name}: no point-in-time recovery")
    return problems


def key_policy_problems(template: Template) -> list[str]:
    """Customer managed keys rotate, the account administers them, a service publisher may only encrypt for it.

    A key policy is the only policy a KMS key obeys. Its `Resource: "*"` means this key, nothing
    else, so it is not a wildcard here. Two kinds of Allow are accepted: AWS's default statement
    (the account root, that is the account through IAM, may do everything with the key: without it
    the key could not be managed), and a service of SERVICE_PUBLISHERS with SERVICE_KEY_ACTIONS only,
    bound to this account by aws:SourceAccount.
    """
    problems = []
    for name, key in resources(template, "AWS::KMS::Key"):
        properties = key.get("Properties", {})
        if properties.get("EnableKeyRotation") is not True:
            problems.append(f"{name}: EnableKeyRotation is not true")
        administered = False
        for index, (statement, _) in enumerate(each(properties.get("KeyPolicy", {}).get("Statement", []))):
            where = f"{name} statement {statement.get('Sid', index)}"
            for key_word in ("NotPrincipal", "NotAction", "NotResource"):
                if key_word in statement:
                    problems.append(f"{where}: {key_word} applies to everything it does not list")
            if statement.get("Effect") != "Allow":
                continue
            if statement.get("Resource") != "*":
                problems.append(f"{where}: Resource {statement.get('Resource')!r}; a key policy names its key as '*'")
            principal = statement.get("Principal")
            actions = {action for action, _ in each(statement.get("Action", []))}
            if principal == {"AWS": ACCOUNT_ROOT}:
                administered = True
                continue
            service = (
                principal.get("Service") if isinstance(principal, dict) and set(principal) == {"Service"} else None
            )
            if isinstance(service, str) and service in SERVICE_PUBLISHERS:
                if extra := actions - SERVICE_KEY_ACTIONS:
                    problems.append(
                        f"{where}: {service} may also {sorted(extra)}; it needs {sorted(SERVICE_KEY_ACTIONS)}"
                    )
                account = statement.get("Condition", {}).get("StringEquals", {}).get("aws:SourceAccount")
                if account != THIS_ACCOUNT:
                    problems.append(f"{where}: {service} may use the key for any account; add aws:SourceAccount")
                continue
            problems.append(
                f"{where}: allows {sorted(actions)} to {principal!r}; only the account (as administrator) "
                f"and {sorted(SERVICE_PUBLISHERS)} (to publish) may use the key"
            )
        if not administered:
            problems.append(f"{name}: no statement lets the account administer the key through IAM ({ACCOUNT_ROOT})")
    return problems


# ------------------------------------------------------------------ in transit


def _denies_without_tls(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition", {})
    return (
        statement.get("Effect") == "Deny"
        and statement.get("Principal") in ("*", {"AWS": "*"})
        and set(condition) == {"Bool"}
        and str(condition["Bool"].get("aws:SecureTransport", "")).lower() == "false"
    )


def tls_problems(template: Template) -> list[str]:
    """Every queue and topic has a resource policy denying every action to anyone not using TLS."""
    problems = []
    for kind, (policy_kind, targets_key, required) in TLS_POLICIES.items():
        for name, _ in resources(template, kind):
            denied: set[str] = set()
            for _, policy in resources(template, policy_kind):
                properties = policy["Properties"]
                if name not in {direct_reference(target) for target, _ in each(properties[targets_key])}:
                    continue
                for statement, _ in each(properties["PolicyDocument"]["Statement"]):
                    on_it = {direct_reference(resource) for resource, _ in each(statement.get("Resource", []))}
                    if _denies_without_tls(statement) and name in on_it:
                        denied |= {action for action, _ in each(statement.get("Action", []))}
            if not denied:
                problems.append(f"{name}: no {policy_kind} denies requests without TLS (aws:SecureTransport false)")
            elif missing := required - denied:
                problems.append(f"{name}: requests without TLS are still allowed for {sorted(missing)}")
    return problems


def _is_service_publish_grant(statement: dict[str, Any]) -> bool:
    """sns:Publish for a service of SERVICE_PUBLISHERS, for this account and its own sources only."""
    principal = statement.get("Principal")
    service = principal.get("Service") if isinstance(principal, dict) and set(principal) == {"Service"} else None
    sources = SERVICE_PUBLISHERS.get(service) if isinstance(service, str) else None
    return (
        sources is not None
        and {action for action, _ in each(statement.get("Action", []))} == {"sns:Publish"}
        and statement.get("Condition")
        == {"StringEquals": {"aws:SourceAccount": THIS_ACCOUNT}, "ArnLike": {"aws:SourceArn": {"Fn::Sub": sources}}}
    )


def resource_policy_problems(template: Template) -> list[str]:
    """The stack's resource policies deny; an Allow is SNS's own default statement, for this account, or
    lets a service that publishes on its own (SERVICE_PUBLISHERS) publish, for this stack's sources only."""
    problems = []
    for kind in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
        for name, policy in resources(template, kind):
            for statement, _ in each(policy["Properties"]["PolicyDocument"]["Statement"]):
                if statement.get("Effect") != "Allow":
                    continue
                actions = {action for action, _ in each(statement.get("Action", []))}
                owner = statement.get("Condition", {}).get("StringEquals", {}).get("AWS:SourceOwner")
                if kind == "AWS::SNS::TopicPolicy" and _is_service_publish_grant(statement):
                    continue
                if not (
                    kind == "AWS::SNS::TopicPolicy"
                    and actions <= SNS_DEFAULT_ACTIONS
                    and owner == {"Ref": "AWS::AccountId"}
                    and set(statement.get("Condition", {})) == {"StringEquals"}
                ):
                    problems.append(
                        f"{name}: allows {sorted(actions)} to {statement.get('Principal')!r}; "
                        "grant through the senders' IAM roles instead"
                    )
    return problems


# ------------------------------------------------------------------ payload logging


def logging_config_problems(template: Template) -> list[str]:
    """No function logs whole events or traces responses through configuration; logs stay at INFO or above."""
    problems = []
    shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    for name, function in resources(template, "AWS::Serverless::Function"):
        own = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
        variables = {**shared, **own}
        for variable in ("POWERTOOLS_LOGGER_LOG_EVENT", "POWERTOOLS_TRACER_CAPTURE_RESPONSE"):
            if str(variables.get(variable, "false")).lower() != "false":
                problems.append(f"{name}: {variable} is {variables[variable]!r}; events would be logged or traced")
        if str(variables.get("POWERTOOLS_LOG_LEVEL", "INFO")).upper() in {"DEBUG", "TRACE"}:
            problems.append(
                f"{name}: POWERTOOLS_LOG_LEVEL {variables['POWERTOOLS_LOG_LEVEL']}; debug logs carry payloads"
            )
        if str(variables.get("POWERTOOLS_DEV", "false")).lower() != "false":
            problems.append(f"{name}: POWERTOOLS_DEV is on; it logs more than production should")
    return problems


def _keyword(call: ast.Call, name: str) -> Any:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


SHELL = ROOT / "layers" / "shared" / "motor_lambda" / "shell.py"
"""Its `lambda_entry` applies Powertools' logger context, metrics and tracer to every handler."""
TRACING = ("capture_lambda_handler", "capture_method")


def decorator_problems(source: str, where: str, handler: str | None = None) -> list[str]:
    """`handler` is wrapped by the shell's `lambda_entry`; nothing logs an event (log_event=False) or traces a
    response (capture_response=False), whether Powertools is applied as a decorator or called (as the shell does)."""
    tree = ast.parse(source)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            bare = {decorator.attr for decorator in node.decorator_list if isinstance(decorator, ast.Attribute)}
            if bare & set(TRACING):
                problems.append(f"{where}: {node.name} is traced with its response; set capture_response=False")
            if "inject_lambda_context" in bare:
                problems.append(f"{where}: {node.name} needs inject_lambda_context(log_event=False, ...)")
            entry = [
                d for d in node.decorator_list if isinstance(d, ast.Call) and ast.unparse(d.func) == "lambda_entry"
            ]
            if node.name == handler and not entry:
                problems.append(f"{where}: {handler} must be decorated with the shell's lambda_entry(...)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in TRACING and _keyword(node, "capture_response") is not False:
                problems.append(f"{where}:{node.lineno}: traced with its response; set capture_response=False")
            if node.func.attr == "inject_lambda_context" and _keyword(node, "log_event") is not False:
                problems.append(f"{where}:{node.lineno}: needs inject_lambda_context(log_event=False, ...)")
    return problems


def entry_problems(source: str) -> list[str]:
    """The shell's `lambda_entry` applies the logger context and the tracer (and the metrics) to the handler."""
    entry = next(
        (node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name == "lambda_entry"),
        None,
    )
    if entry is None:
        return ["the shell has no lambda_entry"]
    called = {
        node.func.attr
        for node in ast.walk(entry)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    needed = ("inject_lambda_context", "log_metrics", "capture_lambda_handler")
    return [f"lambda_entry does not apply {name}" for name in needed if name not in called]


def handler_sources(template: Template = TEMPLATE) -> dict[str, tuple[Path, str]]:
    """Function name -> (handler file, handler function name)."""
    assert not handler_problems(template)
    found = {}
    for name, function in resources(template, "AWS::Serverless::Function"):
        module, _, entry = str(function_property(template, function, "Handler")).rpartition(".")
        found[name] = (ROOT / str(function_property(template, function, "CodeUri")) / f"{module}.py", entry)
    return found


# ------------------------------------------------------------------ the template, the handlers and the repository obey


def test_queues_topic_and_tables_are_encrypted_at_rest_and_tables_recoverable() -> None:
    problems = encryption_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_every_queue_and_topic_refuses_requests_without_tls() -> None:
    problems = tls_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_resource_policies_grant_only_what_sns_gives_every_topic_and_what_alarms_need() -> None:
    problems = resource_policy_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_the_alert_topic_policy_keeps_the_default_owner_statement_for_this_account_only() -> None:
    """A TopicPolicy replaces the default one: subscriptions and the stack's own publish keep the owner's rights.

    So does every other topic's policy (OpsTopicPolicy); their other Allows are resource_policy_problems' business.
    """
    policies = dict(resources(TEMPLATE, "AWS::SNS::TopicPolicy"))
    assert "AlertTopicPolicy" in policies
    for name, policy in policies.items():
        [topic] = [direct_reference(target) for target, _ in each(policy["Properties"]["Topics"])]
        statements = [s for s, _ in each(policy["Properties"]["PolicyDocument"]["Statement"])]
        [default] = [s for s in statements if s["Effect"] == "Allow" and s["Principal"] == {"AWS": "*"}]
        assert set(default["Action"]) == SNS_DEFAULT_ACTIONS, name
        assert default["Condition"] == {"StringEquals": {"AWS:SourceOwner": {"Ref": "AWS::AccountId"}}}, name
        assert direct_reference(default["Resource"]) == topic, name


def test_customer_managed_keys_rotate_and_only_the_account_and_service_publishers_may_use_them() -> None:
    problems = key_policy_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_no_function_logs_events_or_traces_responses_by_configuration() -> None:
    problems = logging_config_problems(TEMPLATE)
    assert not problems, "\n".join(problems)


def test_every_handler_logs_no_event_and_traces_no_response() -> None:
    problems = entry_problems(SHELL.read_text())
    for path, handler in handler_sources().values():
        problems += decorator_problems(path.read_text(), path.relative_to(ROOT).as_posix(), handler)
    for path in (ROOT / "layers" / "shared").rglob("*.py"):
        problems += decorator_problems(path.read_text(), path.relative_to(ROOT).as_posix())
    assert not problems, "\n".join(problems)


REJECTED = {
    "InferenceFunction": ("inference", {"motor_id": "motor-001", "speed_rpm": "fast"}),
    "OperatorActionFunction": ("actions", {"motor_id": "motor-001", "action": "explode"}),
    "AlertFunction": ("alerts", {"event_id": "e-1", "motor_id": "motor-001"}),
}


@pytest.mark.parametrize("function", sorted(REJECTED))
def test_a_rejected_payload_is_logged_as_a_bounded_preview_only(
    function: str, aws: FakeAws, caplog: pytest.LogCaptureFixture
) -> None:
    """Given an invalid event carrying 100 KB of text with a marker in the middle,
    when the handler rejects it,
    then its log lines name the reason and show a bounded preview of the payload, never all of it.
    """
    module_name, event = REJECTED[function]
    module: ModuleType = load_handler(module_name)
    marker = "MIDDLE-OF-PAYLOAD-7f3a"
    payload = {**event, "note": "x" * 50_000 + marker + "x" * 50_000}

    result = module.lambda_handler(payload, LambdaContext())

    # Each record as the function's Powertools logger writes it to CloudWatch: one JSON line.
    lines = [module.logger.registered_formatter.format(record) for record in caplog.records]
    logged = "\n".join(lines)
    assert result["status"] == "rejected"
    assert any(json.loads(line).get("reason") for line in lines), logged[:2000]
    assert marker not in logged
    assert len(logged) < 10_000, f"{len(logged)} characters logged for one rejection"


SECURITY_DOC = ROOT / "docs" / "security.md"


def test_docs_quote_the_device_policy_as_the_template_writes_it() -> None:
    section = SECURITY_DOC.read_text().split("## Device identity", 1)[1]
    quoted = textwrap.dedent(section.split("```yaml\n", 1)[1].split("```", 1)[0])

    statements = load(quoted)

    assert statements == TEMPLATE["Resources"]["DevicePolicy"]["Properties"]["PolicyDocument"]["Statement"]


def test_the_rules_see_what_the_handlers_declare() -> None:
    handlers = handler_sources()
    assert set(handlers) == {
        "ArchiveFunction",
        "InferenceFunction",
        "OperatorActionFunction",
        "AlertFunction",
        "OfflineCheckFunction",
        "ConsoleFunction",
    }
    # Every function an IoT rule invokes takes outside input, and the test above shows it rejects it
    # safely. OfflineCheckFunction runs on a schedule and reads nothing from its event. ConsoleFunction
    # takes the HTTP API's requests, refused safely as the test below shows.
    # IngestionMode batched: a rule writes to a stream, whose event source mapping invokes the function.
    mappings = [mapping["Properties"] for _, mapping in resources(TEMPLATE, "AWS::Lambda::EventSourceMapping")]
    rule_targets: set[str | None] = set()
    for _, rule in resources(TEMPLATE, "AWS::IoT::TopicRule"):
        for action, _ in each(rule["Properties"]["TopicRulePayload"]["Actions"]):
            if "Lambda" in action:
                rule_targets.add(direct_reference(action["Lambda"]["FunctionArn"]))
            elif "Firehose" in action:
                continue  # the archive: Firehose writes to S3 and invokes no function
            else:
                stream = direct_reference(action["Kinesis"]["StreamName"])
                fed = [m for m in mappings if direct_reference(m["EventSourceArn"]) == stream]
                assert fed, f"nothing reads the stream {stream}"
                rule_targets |= {direct_reference(m["FunctionName"]) for m in fed}
    # ArchiveFunction judges nothing: it puts the bytes into the archive as the rules' Firehose action would,
    # and logs none of them (tests/unit/test_archive_handler.py).
    assert set(REJECTED) | {"ArchiveFunction"} == rule_targets
    assert set(handlers) - rule_targets == {"OfflineCheckFunction", "ConsoleFunction"}


@pytest.mark.parametrize("size", [3_000, 100_000], ids=["malformed", "oversize"])
def test_a_console_request_refused_logs_its_reason_and_none_of_its_body(
    size: int, aws: FakeAws, caplog: pytest.LogCaptureFixture
) -> None:
    """Given an operator's action whose note carries a marker (under 4 KB: refused as malformed; 100 KB: too large),
    when ConsoleFunction refuses it, then its log lines name the reason and never the body."""
    module: ModuleType = load_handler("console")
    marker = "MIDDLE-OF-BODY-5c1d"
    event = load_event("console-acknowledge")
    half = "x" * ((size - len(marker)) // 2)
    event["body"] = json.dumps({"action": "dance", "alarm": "predictive", "note": half + marker + half})

    result = module.lambda_handler(event, LambdaContext())

    lines = [module.logger.registered_formatter.format(record) for record in caplog.records]
    logged = "\n".join(lines)
    assert result["statusCode"] == (400 if size < 4096 else 413)
    assert any(json.loads(line).get("reason") for line in lines), logged[:2000]
    assert marker not in logged


# ------------------------------------------------------------------ secrets in the repository


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["git", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603


def _in_a_git_checkout() -> None:
    if _git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        if os.environ.get("CI"):
            pytest.fail("CI must run from a git checkout: the .gitignore rules are tested with git")
        pytest.skip("not a git checkout")


CREDENTIAL_PATHS = [
    "certs/motor-001.private.key",
    "certs/motor-001.cert.pem",
    "certs/motor-001.public.key",
    "certs/anything-at-all.json",
    "x.pem",
    "AmazonRootCA1.pem",
    "device/motor-002.private.key",
    "some/deep/dir/device.key",
    "tests/fixtures/ca.crt",
    "gateway.p12",
    "gateway.pfx",
    "motor.der",
]


@pytest.mark.parametrize("path", CREDENTIAL_PATHS)
def test_certificates_and_keys_are_git_ignored_wherever_they_are(path: str) -> None:
    _in_a_git_checkout()
    result = _git("check-ignore", "--no-index", "--quiet", path)
    assert result.returncode == 0, f"git would offer to commit {path}"


def test_the_ignore_rules_do_not_hide_the_code() -> None:
    _in_a_git_checkout()
    for path in ("device/simulate.py", "template.yaml", "docs/security.md", "tests/integration/broker.py"):
        assert _git("check-ignore", "--no-index", "--quiet", path).returncode == 1, path


# Built from parts so that this file does not match it.
PRIVATE_KEY_PEM = re.compile("-{5}BEGIN ([A-Z0-9]+ )*PRIVATE KEY-{5}")


def test_no_tracked_file_holds_a_private_key() -> None:
    _in_a_git_checkout()
    holding = []
    for name in _git("ls-files", "-z").stdout.split("\0"):
        path = ROOT / name
        readable = name and path.is_file() and path.stat().st_size < 5_000_000
        if readable and PRIVATE_KEY_PEM.search(path.read_bytes().decode("utf-8", "replace")):
            holding.append(name)
    assert holding == []


def test_the_private_key_pattern_finds_keys() -> None:
    begin, end = "-" * 5 + "BEGIN", "-" * 5
    for kind in ("", "EC ", "RSA ", "ENCRYPTED "):
        assert PRIVATE_KEY_PEM.search(f"{begin} {kind}PRIVATE KEY{end}\nMHcCAQEE...")
    assert not PRIVATE_KEY_PEM.search(f"{begin} CERTIFICATE{end}")


# ------------------------------------------------------------------ and each rule can fail


def _properties(template: Template, name: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][name]["Properties"]
    return found


def _unencrypted_queue(template: Template) -> None:
    del _properties(template, "FunctionFailureQueue")["SqsManagedSseEnabled"]


def _unencrypted_topic(template: Template) -> None:
    del _properties(template, "AlertTopic")["KmsMasterKeyId"]


def _topic_with_a_key_from_elsewhere(template: Template) -> None:
    _properties(template, "OpsTopic")["KmsMasterKeyId"] = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd"


def _key_without_rotation(template: Template) -> None:
    _properties(template, "OpsTopicKey")["EnableKeyRotation"] = False


def _key_statement(template: Template, sid: str) -> dict[str, Any]:
    [statement] = [s for s in _properties(template, "OpsTopicKey")["KeyPolicy"]["Statement"] if s.get("Sid") == sid]
    return statement


def _key_usable_by_cloudwatch_for_any_account(template: Template) -> None:
    del _key_statement(template, "CloudWatchAlarmsPublishToTheOpsTopic")["Condition"]


def _key_fully_granted_to_cloudwatch(template: Template) -> None:
    _key_statement(template, "CloudWatchAlarmsPublishToTheOpsTopic")["Action"] = "kms:*"


def _key_open_to_every_account(template: Template) -> None:
    _key_statement(template, "AccountAdministersTheKeyThroughIam")["Principal"] = {"AWS": "*"}


def _key_nobody_administers(template: Template) -> None:
    statements = _properties(template, "OpsTopicKey")["KeyPolicy"]["Statement"]
    statements.remove(_key_statement(template, "AccountAdministersTheKeyThroughIam"))


def _topic_statement(template: Template, sid: str) -> dict[str, Any]:
    statements = _properties(template, "OpsTopicPolicy")["PolicyDocument"]["Statement"]
    [statement] = [s for s in statements if s.get("Sid") == sid]
    return statement


def _alarms_of_any_stack_may_publish(template: Template) -> None:
    condition = _topic_statement(template, "CloudWatchAlarmsOfThisStack")["Condition"]
    condition["ArnLike"]["aws:SourceArn"] = {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:*:*:alarm:*"}


def _cloudwatch_may_publish_for_any_account(template: Template) -> None:
    del _topic_statement(template, "CloudWatchAlarmsOfThisStack")["Condition"]["StringEquals"]


def _cloudwatch_may_manage_the_topic(template: Template) -> None:
    _topic_statement(template, "CloudWatchAlarmsOfThisStack")["Action"] = ["sns:Publish", "sns:SetTopicAttributes"]


def _table_with_an_aws_owned_key(template: Template) -> None:
    _properties(template, "IdempotencyTable")["SSESpecification"]["SSEEnabled"] = False


def _table_without_recovery(template: Template) -> None:
    del _properties(template, "StateTable")["PointInTimeRecoverySpecification"]


def _queue_without_tls_policy(template: Template) -> None:
    del template["Resources"]["RuleErrorQueuePolicy"]


def _topic_policy_denying_publish_only(template: Template) -> None:
    statements = _properties(template, "AlertTopicPolicy")["PolicyDocument"]["Statement"]
    statements[1]["Action"] = ["sns:Publish"]


def _tls_deny_on_true(template: Template) -> None:
    statement = _properties(template, "FunctionFailureQueuePolicy")["PolicyDocument"]["Statement"][0]
    statement["Condition"] = {"Bool": {"aws:SecureTransport": "true"}}


def _tls_deny_on_another_queue(template: Template) -> None:
    _properties(template, "FunctionFailureQueuePolicy")["Queues"] = [{"Ref": "RuleErrorQueue"}]


def _queue_policy_allowing_everyone(template: Template) -> None:
    _properties(template, "RuleErrorQueuePolicy")["PolicyDocument"]["Statement"].append(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "sqs:SendMessage",
            "Resource": {"Fn::GetAtt": ["RuleErrorQueue", "Arn"]},
        }
    )


def _topic_default_statement_for_everyone(template: Template) -> None:
    del _properties(template, "AlertTopicPolicy")["PolicyDocument"]["Statement"][0]["Condition"]


def _logging_every_event(template: Template) -> None:
    _properties(template, "AlertFunction")["Environment"]["Variables"]["POWERTOOLS_LOGGER_LOG_EVENT"] = "true"


def _debug_logs(template: Template) -> None:
    template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] = "DEBUG"


RULES: dict[str, Callable[[Template], list[str]]] = {
    "encryption": encryption_problems,
    "tls": tls_problems,
    "resource_policy": resource_policy_problems,
    "key_policy": key_policy_problems,
    "logging_config": logging_config_problems,
}


@pytest.mark.parametrize(
    ("rule", "breakage", "culprit"),
    [
        ("encryption", _unencrypted_queue, "FunctionFailureQueue"),
        ("encryption", _unencrypted_topic, "AlertTopic"),
        ("encryption", _topic_with_a_key_from_elsewhere, "OpsTopic"),
        ("encryption", _key_without_rotation, "OpsTopic"),
        ("key_policy", _key_without_rotation, "OpsTopicKey"),
        ("key_policy", _key_usable_by_cloudwatch_for_any_account, "OpsTopicKey"),
        ("key_policy", _key_fully_granted_to_cloudwatch, "OpsTopicKey"),
        ("key_policy", _key_open_to_every_account, "OpsTopicKey"),
        ("key_policy", _key_nobody_administers, "OpsTopicKey"),
        ("encryption", _table_with_an_aws_owned_key, "IdempotencyTable"),
        ("encryption", _table_without_recovery, "StateTable"),
        ("tls", _queue_without_tls_policy, "RuleErrorQueue"),
        ("tls", _topic_policy_denying_publish_only, "AlertTopic"),
        ("tls", _tls_deny_on_true, "FunctionFailureQueue"),
        ("tls", _tls_deny_on_another_queue, "FunctionFailureQueue"),
        ("resource_policy", _queue_policy_allowing_everyone, "RuleErrorQueuePolicy"),
        ("resource_policy", _topic_default_statement_for_everyone, "AlertTopicPolicy"),
        ("resource_policy", _alarms_of_any_stack_may_publish, "OpsTopicPolicy"),
        ("resource_policy", _cloudwatch_may_publish_for_any_account, "OpsTopicPolicy"),
        ("resource_policy", _cloudwatch_may_manage_the_topic, "OpsTopicPolicy"),
        ("logging_config", _logging_every_event, "AlertFunction"),
        ("logging_config", _debug_logs, "InferenceFunction"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_each_rule_reports_a_template_broken_on_purpose(
    rule: str, breakage: Callable[[Template], None], culprit: str
) -> None:
    problems = problems_when_broken(RULES[rule], breakage)

    assert any(culprit in problem for problem in problems), f"{rule} rule missed it; it said: {problems}"


@pytest.mark.parametrize(
    ("old", "new", "culprit"),
    [
        ("log_event=False", "log_event=True", "inject_lambda_context(log_event=False"),
        ("capture_response=False", "capture_response=True", "traced with its response"),
        ("capture_response=False", "", "traced with its response"),
        ("logger.inject_lambda_context(", "dict(", "does not apply inject_lambda_context"),
    ],
)
def test_a_shell_that_logs_events_or_traces_responses_is_reported(old: str, new: str, culprit: str) -> None:
    source = SHELL.read_text()
    assert old in source, f"{SHELL.name} no longer contains {old!r}; update this test"
    broken = source.replace(old, new)

    problems = entry_problems(broken) + decorator_problems(broken, SHELL.name)

    assert any(culprit in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "culprit"),
    [
        ("@lambda_entry(logger, tracer, metrics)\n", "", "must be decorated with the shell's lambda_entry"),
        (
            "@lambda_entry(logger, tracer, metrics)\n",
            "@lambda_entry(logger, tracer, metrics)\n@tracer.capture_lambda_handler\n",
            "traced with its response",
        ),
        (
            "@lambda_entry(logger, tracer, metrics)\n",
            "@logger.inject_lambda_context(log_event=True)\n",
            "inject_lambda_context(log_event=False",
        ),
    ],
)
def test_a_handler_that_logs_events_or_traces_responses_is_reported(old: str, new: str, culprit: str) -> None:
    path, handler = handler_sources()["AlertFunction"]
    source = path.read_text()
    assert old in source, f"{path.name} no longer contains {old!r}; update this test"

    problems = decorator_problems(source.replace(old, new), path.name, handler)

    assert any(culprit in problem for problem in problems), problems
