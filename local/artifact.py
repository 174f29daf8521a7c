"""The model the local stack serves: model/output/model.tar.gz, trained with model/train.py the first time.

The first run trains the default model (the simulated fleet, 300 rounds): about 70-85 s on 2 cores.
Later runs find the artifact and start at once.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ARTIFACT = REPO / "model" / "output" / "model.tar.gz"
ARTIFACT_NAME = "model.tar.gz"
"""The name model/train.py gives the artifact in its --out directory."""
TAIL_LINES = 10


def ensure_model(
    path: Path = DEFAULT_ARTIFACT,
    *,
    log: Callable[[str], None],
    train_args: Sequence[str] = (),
    command: Sequence[str] | None = None,
) -> Path:
    """The artifact at `path`, trained first with `python model/train.py --out <its directory>` if it is missing.

    The training's output goes to `log` line by line as it comes. `train_args` are added to the
    command (e.g. `["--motors", "20"]`); `command` replaces it whole (tests use a fake one). A
    failed training raises RuntimeError naming the command, its exit status and its last lines.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.name != ARTIFACT_NAME:
        raise ValueError(f"{path}: model/train.py writes {ARTIFACT_NAME}; name the artifact so")
    out = path.parent
    out.mkdir(parents=True, exist_ok=True)
    # Two runs starting at once (two demos, two test workers) must not train into the same folder together:
    # the second waits for the first, then finds its artifact.
    with (out / f"{ARTIFACT_NAME}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            return path
        _train(path, command if command is not None else _train_command(out, train_args), log)
    return path


def _train(path: Path, argv: Sequence[str], log: Callable[[str], None]) -> None:
    """Run the training command, its output to `log` line by line; RuntimeError if it fails or writes no `path`."""
    shown = shlex.join(argv)
    log(f"$ {shown}")
    # Unbuffered: the child's stdout is a pipe, and its progress lines should arrive as they are printed.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and script, or the caller's command
            argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # errors interleaved with the progress they interrupt
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise RuntimeError(f"cannot run `{shown}`: {exc}") from exc
    with process:
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE above
        try:
            for line in process.stdout:
                text = line.rstrip("\n")
                tail.append(text)
                log(text)
        except BaseException:  # Ctrl-C while training: no orphan left training
            process.kill()
            raise
        status = process.wait()
    if status != 0:
        raise RuntimeError(f"`{shown}` {_describe(status)}; its last lines:\n" + "\n".join(tail))
    if not path.is_file():
        raise RuntimeError(f"`{shown}` succeeded but wrote no {path}")


def _train_command(out: Path, train_args: Sequence[str]) -> list[str]:
    argv = [sys.executable, "model/train.py", "--out", str(out), *train_args]
    # train.py's default card is docs/model-card.md, a tracked file: the local stack must not rewrite it.
    given = {arg.split("=", 1)[0] for arg in train_args}
    if not {"--model-card", "--no-model-card"} & given:
        argv += ["--model-card", str(out / "model-card.md")]
    # One run, the shipped seed's: the further seeds behind the card's intervals only triple the wait.
    if "--seeds" not in given:
        argv += ["--seeds", "1"]
    return argv


def _describe(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"
