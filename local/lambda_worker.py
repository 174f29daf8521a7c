"""One Lambda execution environment: a process that imports a handler once and runs invocations one at a time.

Started by local.lambdas with the function's environment (the template's variables, resolved to the
local resources). It reads one JSON invocation per line on standard input and answers one JSON line
on the descriptor passed as --reply-fd. The handler's own standard output (Powertools writes its JSON
log lines and metrics there, as to CloudWatch Logs in Lambda) goes to standard error, which the parent
keeps in the function's log file. As in Lambda, module-level code runs once per environment (the cold
start) and a handler that raises reports errorType and errorMessage.

Runs as `python -m local.lambda_worker --code-uri functions/inference --handler app.lambda_handler ...`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO


@dataclass
class LocalContext:
    """What Lambda passes as `context` (the attributes the Powertools decorators and our handlers read)."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    log_group_name: str
    log_stream_name: str
    deadline_s: float
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_s - time.monotonic()) * 1000))


def _load_handler(code_uri: Path, handler: str) -> Any:
    """Import `module.function` from the function's folder, as the Lambda runtime does from LAMBDA_TASK_ROOT."""
    module_name, _, function_name = handler.rpartition(".")
    if not module_name or not function_name:
        raise ValueError(f"handler {handler!r} is not module.function")
    path = code_uri / (module_name.replace(".", "/") + ".py")
    sys.path.insert(0, str(code_uri))
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return getattr(module, function_name)


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc)[-8:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code-uri", type=Path, required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--layer", type=Path, action="append", default=[], help="a layer's content folder")
    parser.add_argument("--reply-fd", type=int, required=True)
    args = parser.parse_args(argv)

    replies: TextIO = os.fdopen(args.reply_fd, "w", buffering=1)
    # From here on, anything printed (log lines, EMF metrics) goes to the log, not to the protocol.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for layer in reversed(args.layer):
        sys.path.insert(0, str(layer))

    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
    region = os.environ.get("AWS_REGION", "us-east-1")
    account = os.environ.get("LOCAL_ACCOUNT_ID", "123456789012")
    try:
        handler = _load_handler(args.code_uri.resolve(), args.handler)
    except Exception as exc:  # an init error: Lambda reports it on every invocation
        init_error: dict[str, Any] | None = _error(exc)
        traceback.print_exc()
        handler = None
    else:
        init_error = None
    replies.write(json.dumps({"ready": init_error is None, "error": init_error}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        context = LocalContext(
            function_name=name,
            memory_limit_in_mb=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
            invoked_function_arn=f"arn:aws:lambda:{region}:{account}:function:{name}",
            log_group_name=os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{name}"),
            log_stream_name="local",
            deadline_s=time.monotonic() + float(request["timeout_s"]),
            aws_request_id=request["request_id"],
        )
        reply: dict[str, Any] = {"id": request["id"]}
        if handler is None:
            reply["error"] = init_error
        else:
            try:
                reply["result"] = handler(request["event"], context)
            except Exception as exc:
                traceback.print_exc()
                reply["error"] = _error(exc)
        sys.stdout.flush()
        try:
            replies.write(json.dumps(reply, default=str) + "\n")
        except (TypeError, ValueError) as exc:  # a result JSON cannot carry: Lambda fails the invocation too
            replies.write(json.dumps({"id": request["id"], "error": _error(exc)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
