"""The SageMaker runtime on one machine: InvokeEndpoint on loopback, answered by the artifact's own inference.py.

`ModelServer` does what SageMaker's XGBoost container does in script mode (SAGEMAKER_PROGRAM=inference.py,
SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code): it unpacks model.tar.gz into a private directory, imports
`code/inference.py` from there (not from model/, so the code under test is the code that ships), calls
model_fn once, and answers each request as the container's serving toolkit does (local.script_mode: the
default Content-Type and Accept, input_fn -> predict_fn -> output_fn, the status a script can answer
with and the 500 for what it raises). Around that it speaks the runtime's REST API as botocore's
service model describes it, so the unchanged boto3 client reaches it through
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME and raises the ClientError codes the real service causes:

- `POST /endpoints/{EndpointName}/invocations` -> 200, the body and Content-Type the container sends,
  `x-Amzn-Invoked-Production-Variant: AllTraffic`;
- any other answer of the container -> 424 ModelError, `{"Message", "OriginalStatusCode",
  "OriginalMessage", "LogStreamArn"}`: its status and body (inference.py's Refusal: 400, 406 or 415 with
  the reason; an exception in the inference code: 500 and Flask's generic page);
- another endpoint name -> 400 ValidationError "Endpoint <name> of account 123456789012 not found.";
- a body over 6 MB (InvokeEndpoint's payload limit) -> 413 ValidationError; any other route -> 404.

Not emulated: SigV4 (any credentials are accepted), CustomAttributes and the other optional headers,
several variants, the container's 60 s response limit, and code/requirements.txt (not installed).

For tests that take the model down, `fail_next(n)` and `delay_s` (or, across processes,
`POST /_local/fault` with JSON `{"fail": n, "delay_s": x, "error": "ModelError"}`, every key optional,
accepted from loopback clients only) make the next n invocations fail and every invocation wait.
`GET /_local/stats` (loopback clients only) answers the counters `{"invocations", "rows", "model_errors"}`,
so that a test can tell how many calls scored how many rows from outside the server's process.

    python -m local.sagemaker_endpoint --artifact model/output/model.tar.gz --endpoint-name NAME --port 8080
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from local.loopback_http import (
    FAULT_PATH,
    IDLE_TIMEOUT_S,
    LoopbackHandler,
    LoopbackService,
    check_fail_count,
    serve_until_signalled,
)
from local.script_mode import DEFAULT_INVOCATIONS_ACCEPT, Answer, transform

__all__ = [
    "ACCOUNT_ID",
    "CODE_DIR",
    "CONTAINER",
    "DRAIN_LIMIT_BYTES",
    "FAULTS",
    "FAULT_PATH",
    "IDLE_TIMEOUT_S",
    "MAX_PAYLOAD_BYTES",
    "PROGRAM",
    "REGION",
    "STATS_PATH",
    "VARIANT",
    "ModelServer",
    "main",
]

log = logging.getLogger("local.sagemaker_endpoint")

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
VARIANT = "AllTraffic"
CONTAINER = "primary"
"""SageMaker's name for a single-container model in ModelError messages ("... from primary with message ...")."""
PROGRAM = "inference.py"
CODE_DIR = "code"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""InvokeEndpoint's payload limit: botocore's BodyBlob shape says max 6291456."""
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
"""An oversized body up to this is read and dropped so the 413 reaches the client on a reusable connection."""
STATS_PATH = "/_local/stats"
"""GET: the server's counters, for the local stack's tests (not a SageMaker API)."""
FAULTS: dict[str, int] = {
    "ModelError": 424,
    "ServiceUnavailable": 503,
    "InternalFailure": 500,
    "ModelNotReadyException": 429,
}
"""The errors a fault can inject, with their HTTP status. ModelError is the default because botocore does
not retry it: one injected fault is one failed call. The 5xx ones are retried by botocore's standard mode, as in AWS."""


class ModelServer(LoopbackService):
    """SageMaker runtime InvokeEndpoint for one endpoint, serving a model.tar.gz through its code/inference.py.

    While it runs the artifact is unpacked in `model_dir`; stop() removes it. `delay_s` is how long every
    invocation waits before it is answered (a slow model, for timeout tests).
    """

    description = "the model server"
    thread_name = "sagemaker-endpoint"
    logger = log

    def __init__(
        self,
        artifact: Path,
        endpoint_name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        default_accept: str = DEFAULT_INVOCATIONS_ACCEPT,
    ) -> None:
        super().__init__(_Handler, host, port)
        self.artifact = Path(artifact)
        self.endpoint_name = endpoint_name
        self.default_accept = default_accept
        """The model's SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: the answer type of a request without Accept, or */*."""
        self._invocations = 0
        self._rows = 0
        self._model_errors = 0
        self._fail_error = "ModelError"
        self._model_dir: Path | None = None
        self._module_name: str | None = None
        self._inference: ModuleType | None = None
        self._model: Any = None

    def start(self) -> None:
        """Unpack the artifact, load the model, listen; returns once requests are accepted."""
        super().start()
        log.info("endpoint %s serving %s on %s", self.endpoint_name, self.artifact, self.url)

    @property
    def model_dir(self) -> Path | None:
        """Where the artifact is unpacked while the server runs (SageMaker's /opt/ml/model)."""
        return self._model_dir

    # -- counters and faults -----------------------------------------------------------------------

    @property
    def invocations(self) -> int:
        """InvokeEndpoint requests for this endpoint that were answered, whatever the outcome."""
        with self._lock:
            return self._invocations

    @property
    def rows(self) -> int:
        """Rows scored by successful invocations."""
        with self._lock:
            return self._rows

    @property
    def model_errors(self) -> int:
        """Invocations answered with ModelError: the inference code refused the request or raised."""
        with self._lock:
            return self._model_errors

    def stats(self) -> dict[str, int]:
        """The counters `GET /_local/stats` answers."""
        with self._lock:
            return {"invocations": self._invocations, "rows": self._rows, "model_errors": self._model_errors}

    def fail_next(self, count: int, error: str = "ModelError") -> None:
        """Answer the next `count` invocations with `error` (a key of FAULTS) instead of running the model."""
        check_fail_count(count)
        if error not in FAULTS:
            raise ValueError(f"error must be one of {', '.join(FAULTS)}, not {error!r}")
        with self._lock:
            self._fail_remaining, self._fail_error = count, error

    def faults(self) -> dict[str, Any]:
        """The fault switches now: `{"fail": remaining, "error": ..., "delay_s": ...}`."""
        with self._lock:
            return {"fail": self._fail_remaining, "error": self._fail_error, "delay_s": self._delay_s}

    def set_faults(self, switches: Any) -> None:
        """Apply `POST /_local/fault`'s document: `{"fail": n, "delay_s": x, "error": "ModelError"}`.

        Every key is optional; "error" alone fails the next invocation. ValueError or TypeError if the
        document is not that.
        """
        if not isinstance(switches, dict) or set(switches) - {"fail", "delay_s", "error"}:
            raise ValueError('expected an object with "fail", "delay_s" and/or "error"')
        if "delay_s" in switches:
            self.delay_s = float(switches["delay_s"])
        if "fail" in switches or "error" in switches:
            self.fail_next(int(switches.get("fail", 1)), str(switches.get("error", "ModelError")))

    def begin_invocation(self) -> str | None:
        """Count an invocation; the error to answer it with if a fault is armed."""
        with self._lock:
            self._invocations += 1
            if self._fail_remaining <= 0:
                return None
            self._fail_remaining -= 1
            return self._fail_error

    # -- the model ---------------------------------------------------------------------------------

    def _setup(self) -> None:
        """Unpack the artifact and load the model, as the container does before it answers."""
        self._model_dir = Path(tempfile.mkdtemp(prefix="sagemaker-model-"))
        _extract(self.artifact, self._model_dir)
        code_dir = self._model_dir / CODE_DIR
        script = code_dir / PROGRAM
        if not script.is_file():
            raise ValueError(f"{self.artifact} has no {CODE_DIR}/{PROGRAM}: script mode has nothing to run")
        # A name of its own: two servers in one process (or the tests' own `model.inference`) never share state.
        self._module_name = f"_sagemaker_program_{uuid.uuid4().hex}"
        self._inference = import_program(self._module_name, script)
        missing = [
            name for name in ("model_fn", "input_fn", "predict_fn", "output_fn") if not hasattr(self._inference, name)
        ]
        if missing:
            raise ValueError(f"{self.artifact}: {CODE_DIR}/{PROGRAM} does not define {', '.join(missing)}")
        self._model = self._inference.model_fn(str(self._model_dir))

    def _teardown(self) -> None:
        """Forget the model and remove the unpacked artifact."""
        self._model = self._inference = None
        if self._module_name is not None:
            sys.modules.pop(self._module_name, None)
            self._module_name = None
        if self._model_dir is not None:
            shutil.rmtree(self._model_dir, ignore_errors=True)
            self._model_dir = None

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Answer:
        """The container's answer to one request (headers as the client sent them, None if absent)."""
        program = self._inference
        if program is None:
            raise RuntimeError("the model server is not started")
        answer = transform(
            program, self._model, body, content_type=content_type, accept=accept, default_accept=self.default_accept
        )
        with self._lock:
            if answer.status == 200:
                self._rows += answer.rows
            else:
                self._model_errors += 1
        return answer

    def model_error(self, status: int, original: str) -> dict[str, Any]:
        """The ModelError body SageMaker sends when its container answered `status` (botocore's ModelError shape)."""
        kind = "client" if 400 <= status < 500 else "server"
        group = f"/aws/sagemaker/Endpoints/{self.endpoint_name}"
        console = (
            f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logEventViewer:group={group}"
        )
        return {
            "Message": (
                f'Received {kind} error ({status}) from {CONTAINER} with message "{original}". '
                f"See {console} in account {ACCOUNT_ID} for more information."
            ),
            "OriginalStatusCode": status,
            "OriginalMessage": original,
            "LogStreamArn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}",
        }


def _extract(artifact: Path, model_dir: Path) -> None:
    """Unpack model.tar.gz; refuse members that would land outside `model_dir`, whatever the filter would do."""
    with tarfile.open(artifact, "r:gz") as archive:
        for member in archive.getmembers():
            name = PurePosixPath(member.name)
            # The data filter would strip a leading "/" and unpack the file anyway; an artifact like that is broken.
            if name.is_absolute() or ".." in name.parts:
                raise ValueError(f"{artifact}: member {member.name!r} points outside the model directory")
        # The data filter also refuses links leaving the directory, device files and setuid bits.
        archive.extractall(model_dir, filter="data")


def import_program(module_name: str, script: Path) -> ModuleType:
    """Import the artifact's inference.py; its directory is on sys.path meanwhile, as SAGEMAKER_SUBMIT_DIRECTORY is."""
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses and pickling look the module up by name.
    sys.modules[module_name] = module
    code_dir = str(script.parent)
    sys.path.insert(0, code_dir)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(code_dir)
    return module


class _Handler(LoopbackHandler[ModelServer]):
    """One connection: InvokeEndpoint, the fault switch, and 404 for the rest."""

    server_version = "LocalSageMakerRuntime/1.0"
    invalid_request = "ValidationError"
    forbidden = "AccessDeniedException"
    too_large = "ValidationError"
    too_large_message = "Request payload of {length} bytes exceeds the limit of {limit} bytes."
    drain_limit_bytes = DRAIN_LIMIT_BYTES

    def do_GET(self) -> None:
        if urlsplit(self.path).path == STATS_PATH:
            if self._loopback_client():
                self._send_json(200, None, self.app.stats())
            return
        super().do_GET()

    def _post(self, url: SplitResult) -> None:
        parts = url.path.split("/")
        if len(parts) != 4 or parts[0] or parts[1] != "endpoints" or parts[3] != "invocations" or not parts[2]:
            self._not_found()
            return
        body = self._read_body(MAX_PAYLOAD_BYTES)
        if body is None:
            return
        name = unquote(parts[2])
        if name != self.app.endpoint_name:
            self._error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT_ID} not found.")
            return
        fault = self.app.begin_invocation()
        delay_s = self.app.delay_s
        if delay_s:
            time.sleep(delay_s)
        if fault == "ModelError":  # as a container that crashed: a server error from the model
            self._send_json(424, fault, self.app.model_error(500, "local fault injection"))
            return
        if fault is not None:
            self._error(FAULTS[fault], fault, f"{fault} (local fault injection)")
            return
        answer = self.app.invoke(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
        if answer.status != 200:
            original = answer.body.decode("utf-8", "replace")
            if answer.status < 500:  # a refused request; script_mode logged a crash with its traceback
                log.warning("model error on %s: %s %s", self.app.endpoint_name, answer.status, original)
            self._send_json(424, "ModelError", self.app.model_error(answer.status, original))
            return
        self._send(200, answer.body, answer.content_type, {"x-Amzn-Invoked-Production-Variant": VARIANT})

    def _not_found(self) -> None:
        # Read the body out first: the connection is kept alive and its next request starts after it.
        if self._read_body(DRAIN_LIMIT_BYTES) is None:
            return
        self._error(404, "UnknownOperationException", f"no SageMaker runtime operation at {self.command} {self.path}")

    def _error(self, status: int, code: str, message: str) -> None:
        self._send_json(status, code, {"Message": message})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.sagemaker_endpoint",
        description="Serve a model.tar.gz on loopback as SageMaker runtime InvokeEndpoint, through its inference.py.",
    )
    parser.add_argument("--artifact", type=Path, required=True, help="model.tar.gz (xgboost-model + code/inference.py)")
    parser.add_argument("--endpoint-name", required=True, help="the EndpointName clients invoke")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: any free one, printed when ready)")
    args = parser.parse_args(argv)
    return serve_until_signalled(
        ModelServer(args.artifact, args.endpoint_name, port=args.port), (OSError, ValueError, tarfile.TarError)
    )


if __name__ == "__main__":
    status = main()
    # Stopped cleanly (model directory removed, connections closed): skip the interpreter's teardown of
    # NumPy, SciPy and XGBoost, most of a second of every local stack's stop.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
