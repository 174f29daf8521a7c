"""Score a model trained on tests/historian_synth.py's export by issue 21's definition.

    python tests/historian_score.py EXPORT_DIR TRAIN_OUT_DIR

EXPORT_DIR is the generator's folder (its ground_truth.csv); TRAIN_OUT_DIR is `python model/train.py
--archive ... --out` 's folder (its held-out-alarms.json). On the held-out motors:

- a failure is forewarned when a predictive alarm was up at some moment of the 24 calendar hours
  before it (raised before the failure, and not cleared before those 24 hours began); its lead time
  is the calendar time from the earliest such raise to the failure;
- the failures that count are those whose signature stood out at least 6 h ahead (ground truth's
  `warning_h`, see docs/import.md "The test fleet");
- a false alarm is an alarm that was up within the 24 h before no failure at all (of any mode).

Until model/evaluate.py scores by this definition, this is where the must-show figure comes from.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

WINDOW_H = 24.0
MIN_WARNING_H = 6.0


def score(
    export_dir: Path, train_out: Path, *, window_h: float = WINDOW_H, min_warning_h: float = MIN_WARNING_H
) -> dict[str, Any]:
    """Forewarned share, lead times and false alarms per motor-year of the held-out motors."""
    held = json.loads((train_out / "held-out-alarms.json").read_text(encoding="utf-8"))
    motors = set(held["motors"])
    with (export_dir / "ground_truth.csv").open(encoding="utf-8", newline="") as handle:
        truth = [row for row in csv.DictReader(handle) if row["asset"] in motors]
    alarms = [
        (a["motor_id"], _s(a["raised"]), None if a["cleared"] is None else _s(a["cleared"])) for a in held["alarms"]
    ]
    window_s = window_h * 3600
    counted = [False] * len(alarms)
    outcomes: list[dict[str, Any]] = []
    for failure in truth:
        failed = _s(failure["failed_at"])
        raises = []
        for index, (motor, raised, cleared) in enumerate(alarms):
            if motor == failure["asset"] and raised <= failed and (cleared is None or cleared >= failed - window_s):
                counted[index] = True
                raises.append(raised)
        lead_h = (failed - min(raises)) / 3600 if raises else None
        outcomes.append({**failure, "lead_h": None if lead_h is None else round(lead_h, 2)})
    warned = [o for o in outcomes if float(o["warning_h"]) >= min_warning_h]
    leads = sorted(o["lead_h"] for o in warned if o["lead_h"] is not None)
    false_alarms = counted.count(False)
    return {
        "motors": len(motors),
        "motor_years": held["motor_years"],
        "failures": len(outcomes),
        f"warning_{min_warning_h:g}h_failures": len(warned),
        "forewarned": len(leads),
        "forewarned_fraction": round(len(leads) / len(warned), 4) if warned else None,
        f"forewarned_{min_warning_h:g}h_ahead": sum(lead >= min_warning_h for lead in leads),
        "lead_h_median": leads[len(leads) // 2] if leads else None,
        "alarms": len(alarms),
        "false_alarms": false_alarms,
        "false_alarms_per_motor_year": round(false_alarms / held["motor_years"], 3) if held["motor_years"] else None,
        "missed": [
            {k: o[k] for k in ("asset", "failed_at", "mode", "warning_h")} for o in warned if o["lead_h"] is None
        ],
    }


def _s(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export_dir", type=Path, help="tests/historian_synth.py's output folder")
    parser.add_argument("train_out", type=Path, help="model/train.py --archive's --out folder")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(score(args.export_dir, args.train_out), indent=2))
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
