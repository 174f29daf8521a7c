"""Check a detector-configuration document before you put it in SSM Parameter Store.

    .venv/bin/python scripts/check_config.py overrides.json     # or - for standard input

Prints the configuration in force after the overrides (exit 0), or why the functions would
reject the document and keep the previous one (exit 1). The functions apply exactly the same
rules: motor_maintenance.config.DetectorConfig.with_overrides.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if not __package__:  # run as a script: make the repository's packages importable
    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "layers" / "shared")]

from device.requirements_check import setup_needed

with setup_needed("scripts/check_config.py"):
    from pydantic import ValidationError

    from motor_maintenance.config import DetectorConfig
    from motor_maintenance.telemetry import describe_validation_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("document", help="JSON file with the overrides, or - for standard input")
    args = parser.parse_args(argv)
    try:
        text = sys.stdin.read() if args.document == "-" else Path(args.document).read_text()
        config = DetectorConfig.with_overrides(json.loads(text))
    except OSError as exc:
        print(f"cannot read {args.document}: {exc.strerror}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as exc:
        print(f"not JSON: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"rejected: {describe_validation_error(exc)}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"rejected: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(config.model_dump(mode="json"), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
