"""One clear line instead of a traceback when a script runs on an interpreter without the project's packages.

A script wraps its third-party imports in `setup_needed`, right after putting the repository on the
path; it imports nothing but the standard library itself, so it works on any python3:

    with setup_needed("device/simulate.py"):
        from device.mqtt import DeviceConnection

It lives in `device/`, the lowest of the repository's own packages outside the Lambda layer, which
`model/`, `local/`, `scripts/` and `benchmarks/` import already, and which ships alone to a device.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEARCHED = (ROOT, ROOT / "layers" / "shared")
"""Where the repository's own packages live: a module missing from these is a bug, not a missing set-up."""
MISSING_SETUP_STATUS = 1


def setup_hint(script: str, module: str) -> str:
    """The one line: what is missing, and the two commands that provide it."""
    return (
        f"{script} needs the Python package {module!r}, which {sys.executable} does not have: run `make setup` "
        "once (about a minute), then `source .venv/bin/activate` (or call .venv/bin/python) and run it again"
    )


def _is_ours(module: str) -> bool:
    top = module.partition(".")[0]
    return any((folder / top).is_dir() or (folder / f"{top}.py").is_file() for folder in SEARCHED)


@contextmanager
def setup_needed(script: str) -> Iterator[None]:
    """Turn a third-party ModuleNotFoundError into `setup_hint` on stderr and exit status 1; ours propagate."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or _is_ours(exc.name):
            raise
        print(setup_hint(script, exc.name.partition(".")[0]), file=sys.stderr)
        raise SystemExit(MISSING_SETUP_STATUS) from None
