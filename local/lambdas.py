"""Lambda on one machine: execution environments as processes, asynchronous invocation as IoT rules use it, and
synchronous invocation as an event source mapping uses it.

An IoT rule's Lambda action invokes asynchronously (InvocationType Event): Lambda queues the event,
runs it, retries a failed invocation (MaximumRetryAttempts, 2 by default) and, once the retries are
spent or the event is older than MaximumEventAgeInSeconds, sends a failure record to the
function's on-failure destination. `LocalFunction` does the same, with two differences written down
in docs/local-stack.md: the waits between retries are seconds, not Lambda's minutes
(`retry_delays_s`), and concurrency is a fixed number of environments (`concurrency`, 1 by default,
so one motor's readings are applied in the order they were published).

`invoke` is InvocationType RequestResponse, what Lambda's event source mappings use (local.kinesis): it
runs on the same environments, in turn with the queued events, and returns the result or the error to
the caller, with no retry and no on-failure destination (the caller decides, as a mapping does).

Each environment is a `local.lambda_worker` process with the function's own environment variables,
importing the handler from CodeUri and the layers' folders, as Lambda imports them from
/var/task and /opt/python. A handler that runs past the function's Timeout is killed with its process,
as Lambda does, and the next invocation starts a new environment (a cold start).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("local.lambdas")

REPO = Path(__file__).resolve().parent.parent
RETRY_DELAYS_S = (1.0, 2.0)
"""Lambda waits about 1 minute before the first retry and 2 before the second; locally, seconds."""
START_TIMEOUT_S = 60.0
"""Importing a handler (Powertools, boto3, pydantic) takes a second or two; a busy machine, more."""


class InvokeRefused(Exception):
    """The function cannot take the event (its queue is full or it is stopping): IoT's Lambda action fails."""


@dataclass(frozen=True, slots=True)
class Invocation:
    """One event on its way through a function, with what asynchronous invocation keeps about it."""

    event: Any
    received_s: float
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: int = 0
    reply: Future[tuple[Any, dict[str, Any] | None]] | None = None
    """Set for a synchronous invocation: the caller waits on it for (result, error)."""
    source: str | None = None
    """Who invoked it (an IoT rule's name), for the stack's accounting (local.accounting)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an invocation ended: a result, or the error of its last attempt (and whether it was parked)."""

    function: str
    invocation: Invocation
    result: Any = None
    error: dict[str, Any] | None = None
    dead_lettered: bool = False
    duration_ms: float = 0.0


Park = Callable[[str, dict[str, Any]], None]
"""Sends a failure record to the on-failure destination (by its logical id)."""


def _brief(error: dict[str, Any]) -> str:
    return f"{error.get('errorType')}: {error.get('errorMessage')}"


class Environment:
    """One execution environment: a worker process, started lazily, replaced after a timeout or a crash."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_file: TextIO) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = dict(env)
        self._log_file = log_file
        self._process: subprocess.Popen[str] | None = None
        self._replies: TextIO | None = None
        self.cold_starts = 0

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [*self._argv, "--reply-fd", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=self._log_file,
                stderr=self._log_file,
                env=self._env,
                cwd=REPO,
                pass_fds=(write_fd,),
                text=True,
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        self._replies = os.fdopen(read_fd, "r")
        self.cold_starts += 1
        ready = self._read(START_TIMEOUT_S)
        if ready is None:
            self.stop()
            raise RuntimeError(f"{self.name}: the execution environment did not start within {START_TIMEOUT_S:.0f} s")
        if not ready.get("ready"):
            log.error("%s: init error: %s", self.name, (ready.get("error") or {}).get("errorMessage"))

    def _read(self, timeout_s: float) -> dict[str, Any] | None:
        if self._replies is None:
            return None
        ready, _, _ = select.select([self._replies], [], [], max(timeout_s, 0.0))
        if not ready:
            return None
        line = self._replies.readline()
        if not line:
            return None
        reply: dict[str, Any] = json.loads(line)
        return reply

    def invoke(self, invocation: Invocation, timeout_s: float) -> tuple[Any, dict[str, Any] | None]:
        """Run one invocation: (result, None) or (None, error) as Lambda reports them."""
        if self._process is None or self._process.poll() is not None:
            self._start()
        if self._process is None or self._process.stdin is None:
            return None, {"errorType": "Runtime.ExitError", "errorMessage": "the execution environment did not start"}
        request = {"id": invocation.request_id, "request_id": invocation.request_id, "timeout_s": timeout_s}
        try:
            self._process.stdin.write(json.dumps({**request, "event": invocation.event}) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            self.stop()
            return None, {"errorType": "Runtime.ExitError", "errorMessage": "the execution environment exited"}
        reply = self._read(timeout_s + 0.5)
        if reply is None:
            timed_out = self._process.poll() is None
            self.stop()
            if timed_out:
                message = f"Task timed out after {timeout_s:.2f} seconds"
                return None, {"errorType": "Sandbox.Timedout", "errorMessage": message}
            return None, {"errorType": "Runtime.ExitError", "errorMessage": "the execution environment exited"}
        if "error" in reply:
            return None, reply["error"]
        return reply.get("result"), None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):  # the process may be gone already
                    process.stdin.close()
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._replies is not None:
            self._replies.close()
            self._replies = None


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """What the local Lambda needs of a function (from template.yaml, resolved)."""

    name: str
    """Logical id, e.g. InferenceFunction; also the function name locally."""
    code_uri: Path
    handler: str
    environment: Mapping[str, str]
    layers: tuple[Path, ...] = ()
    timeout_s: float = 3.0
    memory_mb: int = 128
    max_retry_attempts: int = 2
    max_event_age_s: float = 21600.0
    on_failure: str | None = None
    """Logical id of the on-failure destination (an SQS queue)."""


class LocalFunction:
    """A function invoked asynchronously: a queue, `concurrency` environments, retries, an on-failure destination."""

    def __init__(
        self,
        config: FunctionConfig,
        *,
        base_env: Mapping[str, str],
        log_dir: Path,
        park: Park,
        on_outcome: Callable[[Outcome], None] = lambda outcome: None,
        concurrency: int = 1,
        queue_limit: int = 100_000,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        region: str = "us-east-1",
        account: str = "123456789012",
    ) -> None:
        self.config = config
        self._park = park
        self._on_outcome = on_outcome
        self._queue_limit = queue_limit
        self._retry_delays_s = tuple(retry_delays_s)
        self.arn = f"arn:aws:lambda:{region}:{account}:function:{config.name}"
        self._lock = threading.Condition()
        self._ready: list[tuple[float, int, Invocation]] = []  # (due, order, invocation): retries wait
        self._order = itertools.count()
        self._busy = 0
        self._stopping = False
        self.invocations = 0
        self.errors = 0
        self.dead_lettered = 0
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = (log_dir / f"{config.name}.log").open("a", buffering=1)
        env = {
            **base_env,
            **config.environment,
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
            "LAMBDA_TASK_ROOT": str(config.code_uri),
            "_HANDLER": config.handler,
            "LOCAL_ACCOUNT_ID": account,
        }
        argv = [sys.executable, "-m", "local.lambda_worker", "--code-uri", str(config.code_uri)]
        argv += ["--handler", config.handler, *(arg for layer in config.layers for arg in ("--layer", str(layer)))]
        self._environments = [
            Environment(f"{config.name}#{i + 1}", argv, env, self._log_file) for i in range(concurrency)
        ]
        self._threads = [
            threading.Thread(target=self._serve, args=(e,), name=f"lambda-{e.name}", daemon=True)
            for e in self._environments
        ]
        for thread in self._threads:
            thread.start()

    @property
    def cold_starts(self) -> int:
        return sum(e.cold_starts for e in self._environments)

    def pending(self) -> int:
        """Events queued, waiting for a retry or running."""
        with self._lock:
            return len(self._ready) + self._busy

    def invoke_async(self, event: Any, source: str | None = None) -> str:
        """Queue an event (InvocationType Event) from `source`; its request id. InvokeRefused if the queue is full."""
        invocation = Invocation(event=event, received_s=time.monotonic(), source=source)
        with self._lock:
            if self._stopping:
                raise InvokeRefused(f"{self.config.name} is stopping")
            if len(self._ready) >= self._queue_limit:
                raise InvokeRefused(f"{self.config.name}: {self._queue_limit} events queued (throttled, 429)")
            heapq.heappush(self._ready, (invocation.received_s, next(self._order), invocation))
            self._lock.notify()
        return invocation.request_id

    def invoke(self, event: Any) -> tuple[Any, dict[str, Any] | None]:
        """Run an event and wait for it (InvocationType RequestResponse): (result, None) or (None, error).

        It takes its turn with the queued events on the function's environments; no retry, no
        on-failure destination and no `on_outcome`: the caller handles the answer. InvokeRefused if
        the function is stopping (before or while the event waits).
        """
        reply: Future[tuple[Any, dict[str, Any] | None]] = Future()
        invocation = Invocation(event=event, received_s=time.monotonic(), reply=reply)
        with self._lock:
            if self._stopping:
                raise InvokeRefused(f"{self.config.name} is stopping")
            heapq.heappush(self._ready, (invocation.received_s, next(self._order), invocation))
            self._lock.notify()
        return reply.result()

    def _next(self) -> Invocation | None:
        with self._lock:
            while True:
                if self._stopping and not self._ready:
                    return None
                now = time.monotonic()
                if self._ready and self._ready[0][0] <= now:
                    self._busy += 1
                    return heapq.heappop(self._ready)[2]
                wait = (self._ready[0][0] - now) if self._ready else None
                if self._stopping and wait is not None:
                    wait = min(wait, 0.05)
                self._lock.wait(wait)

    def _serve(self, environment: Environment) -> None:
        while (invocation := self._next()) is not None:
            try:
                self._run(environment, invocation)
            except Exception:  # the local Lambda service must outlive any one invocation
                log.exception("%s: invocation %s could not be run", self.config.name, invocation.request_id)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._lock.notify_all()
        environment.stop()

    def _run(self, environment: Environment, invocation: Invocation) -> None:
        if invocation.reply is not None:
            try:
                answer = environment.invoke(invocation, self.config.timeout_s)
            except BaseException as exc:  # the caller must not wait forever on an environment that broke
                invocation.reply.set_exception(exc)
                raise
            with self._lock:
                self.invocations += 1
                self.errors += answer[1] is not None
            invocation.reply.set_result(answer)
            return
        attempt = Invocation(
            invocation.event,
            invocation.received_s,
            invocation.request_id,
            invocation.attempts + 1,
            source=invocation.source,
        )
        started = time.monotonic()
        result, error = environment.invoke(attempt, self.config.timeout_s)
        duration_ms = (time.monotonic() - started) * 1000
        with self._lock:
            self.invocations += 1
            self.errors += error is not None
        if error is None:
            self._on_outcome(Outcome(self.config.name, attempt, result=result, duration_ms=duration_ms))
            return
        age_s = time.monotonic() - attempt.received_s
        retries_done = attempt.attempts - 1
        if retries_done < self.config.max_retry_attempts and age_s < self.config.max_event_age_s:
            delay = self._retry_delays_s[min(retries_done, len(self._retry_delays_s) - 1)]
            log.info(
                "%s: attempt %d failed (%s); retrying in %.1f s",
                self.config.name,
                attempt.attempts,
                _brief(error),
                delay,
            )
            with self._lock:
                heapq.heappush(self._ready, (time.monotonic() + delay, next(self._order), attempt))
                self._lock.notify()
            return
        condition = "RetriesExhausted" if age_s < self.config.max_event_age_s else "EventAgeExceeded"
        parked = False
        if self.config.on_failure is not None:
            try:
                self._park(self.config.on_failure, self.failure_record(attempt, error, condition))
                parked = True
            except Exception:
                log.exception(
                    "%s: could not park %s in %s", self.config.name, attempt.request_id, self.config.on_failure
                )
        with self._lock:
            self.dead_lettered += parked
        log.warning("%s: %s after %d attempts: %s", self.config.name, condition, attempt.attempts, _brief(error))
        self._on_outcome(Outcome(self.config.name, attempt, error=error, dead_lettered=parked, duration_ms=duration_ms))

    def failure_record(self, invocation: Invocation, error: dict[str, Any], condition: str) -> dict[str, Any]:
        """What Lambda sends to an on-failure destination (scripts/redrive.py reads it)."""
        return {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": invocation.request_id,
                "functionArn": f"{self.arn}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": invocation.attempts,
            },
            "requestPayload": invocation.event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": error.get("errorMessage"), "errorType": error.get("errorType")},
        }

    def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or running (retries included); whether it got there in time."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._ready or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Refuse new events, let the running ones finish, stop every environment."""
        with self._lock:
            self._stopping = True
            waiting = [entry[2].reply for entry in self._ready if entry[2].reply is not None]
            self._ready.clear()
            self._lock.notify_all()
        for reply in waiting:
            reply.set_exception(InvokeRefused(f"{self.config.name} stopped before the invocation ran"))
        for thread in self._threads:
            thread.join(timeout_s + self.config.timeout_s)
        for environment in self._environments:
            environment.stop()
        self._log_file.close()
