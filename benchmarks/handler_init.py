"""Handler init: import + module-level set-up of each function, in a fresh process, against a naive Powertools handler.

Each run is a new interpreter that imports `functions/<name>/app.py` the way Lambda does (the function's
folder first on the path, then the layer), with the environment variables template.yaml sets on it,
Lambda's own variables, fake credentials and every AWS endpoint pointed at a closed loopback port, so
nothing can reach the network. The clock starts after the interpreter is up and stops when the module
has run: Lambda's INIT minus the runtime's own start. Runs of the different handlers are interleaved,
so a noisy neighbour slows all of them alike; the figure is the median.

The floor is the handler most Powertools examples start as, written by this module to a temporary
folder: Logger, Tracer, Metrics and the parser imported at module level, and two boto3 clients.
Beside it, a second synthetic handler imports only the libraries every function here must load at
init (boto3, pydantic and the parser, Powertools Logger, Metrics and a Tracer patching botocore) and
creates nothing: the least init any handler built to this project's style can have, so the ratios
show how much of the rest is this project's own code.

awscrt is hidden from every child: Lambda's Python runtime and our layer do not have it, while here it
is installed for the device SDK and botocore would import it (about 40 ms).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.report import REPO, Figure, ratio
from local.template import load

FUNCTIONS = ("InferenceFunction", "OperatorActionFunction", "AlertFunction")
NAIVE = "naive Powertools handler"
NAIVE_HANDLER = '''"""A naive Powertools handler: everything imported and created at module level."""

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser, parse

logger = Logger()
tracer = Tracer()
metrics = Metrics()
dynamodb = boto3.client("dynamodb")
sagemaker = boto3.client("sagemaker-runtime")


def lambda_handler(event, context):
    return {"parse": parse.__name__, "event_parser": event_parser.__name__}
'''
REQUIRED = "required libraries alone"
REQUIRED_HANDLER = '''"""What every function here imports at init, and nothing made: the least init possible."""

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel

logger = Logger()
tracer = Tracer(patch_modules=["botocore"])
metrics = Metrics()


def lambda_handler(event, context):
    return {"boto3": boto3.__name__, "parse": parse.__name__, "model": BaseModel.__name__}
'''
# Runs in the child: the clock starts once the interpreter is up, and json is imported after it stops.
CHILD = """
import importlib.util, sys, time
sys.modules["awscrt"] = None  # not in Lambda's runtime nor in our layer: botocore's import of it fails, as there
wall, cpu = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
import json
print(json.dumps({"wall_s": wall, "cpu_s": cpu}))
"""
LAYER = REPO / "layers" / "shared"
NOWHERE = "http://127.0.0.1:9"
"""The discard port on loopback, where nothing listens: a call would fail at once, never leave the machine."""
REGION = "us-east-1"


def template_environments() -> dict[str, tuple[Path, dict[str, str]]]:
    """Each function's code folder and the variables template.yaml sets on it, with names a stack would give.

    The endpoint is configured (ExistingEndpointName), as in a deployment with the predictive strategy on.
    """
    template = load(REPO / "template.yaml")
    resources = template.document["Resources"]
    physical = {lid: _physical_name(lid, spec["Type"]) for lid, spec in resources.items()}
    attributes = {(lid, name): f"bench-{lid}-{name}" for lid in resources for name in ("Arn", "EndpointName")}
    resolver = template.resolver(
        parameters={"ExistingEndpointName": "bench-endpoint"},
        pseudo={
            "AWS::Region": REGION,
            "AWS::AccountId": "123456789012",
            "AWS::StackName": "bench",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
        physical=physical,
        attributes=attributes,
    )
    return {
        name: (template.functions[name].code_uri, template.functions[name].resolved_environment(resolver))
        for name in FUNCTIONS
    }


def _physical_name(logical_id: str, kind: str) -> str:
    if kind == "AWS::SNS::Topic":
        return f"arn:aws:sns:{REGION}:123456789012:bench-{logical_id}"
    if kind == "AWS::SSM::Parameter":
        return f"/bench/{logical_id}"
    return f"bench-{logical_id}"


def lambda_environment(function_name: str, code_dir: Path, variables: dict[str, str]) -> dict[str, str]:
    """The child's environment: ours minus any AWS or Powertools settings, plus Lambda's and the template's."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "_X_AMZN", "LAMBDA_"))}
    return {
        **keep,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": str(code_dir),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": NOWHERE,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:9",
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        # The function's folder, then the layer (Lambda's /var/task, then /opt/python): not a .pth file of
        # whichever venv runs the benchmark (`make setup` writes one for .venv only).
        "PYTHONPATH": os.pathsep.join([str(code_dir), str(LAYER)]),
        **variables,
    }


def init_once(app: Path, env: dict[str, str]) -> dict[str, float]:
    """One fresh interpreter importing `app` from its own folder: wall and CPU seconds of the import."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", CHILD, str(app)],
        cwd=app.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {app} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def measure(*, repetitions: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Median init time of each function and of the naive handler, interleaved, `repetitions` each."""
    environments = template_environments()
    runs: dict[str, list[dict[str, float]]] = {NAIVE: [], REQUIRED: [], **{name: [] for name in FUNCTIONS}}
    with tempfile.TemporaryDirectory(prefix="bench-naive-") as folder:
        _, inference_vars = environments["InferenceFunction"]
        targets: dict[str, tuple[Path, dict[str, str]]] = {}
        for name, source in ((NAIVE, NAIVE_HANDLER), (REQUIRED, REQUIRED_HANDLER)):
            app = Path(folder) / name.replace(" ", "_") / "app.py"
            app.parent.mkdir()
            app.write_text(source)
            targets[name] = (app, lambda_environment("SyntheticFunction", app.parent, inference_vars))
        for name, (code_dir, variables) in environments.items():
            targets[name] = (code_dir / "app.py", lambda_environment(name, code_dir, variables))
        for repetition in range(repetitions):
            for name, (app, env) in targets.items():
                runs[name].append(init_once(app, env))
            log(f"handler init: {repetition + 1}/{repetitions} rounds")
    medians = {name: statistics.median(run["wall_s"] for run in values) for name, values in runs.items()}
    floor = Figure(f"{NAIVE} (median of {repetitions})", medians[NAIVE], "s")
    return {
        "ratios": [
            *(
                ratio(
                    f"{name} init",
                    Figure(f"median of {repetitions} fresh imports", medians[name], "s"),
                    floor,
                    note="import + module-level set-up, interpreter start excluded",
                )
                for name in FUNCTIONS
            ),
            ratio(
                f"{REQUIRED} init",
                Figure(f"median of {repetitions} fresh imports", medians[REQUIRED], "s"),
                floor,
                note="boto3, pydantic, Powertools: the least any function here can import; no client made",
            ),
        ],
        "details": {
            "repetitions": repetitions,
            "median_wall_s": medians,
            "median_cpu_s": {name: statistics.median(run["cpu_s"] for run in values) for name, values in runs.items()},
            "runs": runs,
            "naive_handler": NAIVE_HANDLER,
            "required_handler": REQUIRED_HANDLER,
            "environment": {name: variables for name, (_, variables) in environments.items()},
            "aws_endpoint_url": NOWHERE,
        },
    }
