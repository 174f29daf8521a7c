"""Small synthetic files in the exact format of the public AI4I 2020 predictive-maintenance dataset.

The tests never read the real file (users download it from UCI); they generate their own by the
rules S. Matzka (2020) gives for the published data:

- product quality L/M/H in shares 50/30/20 %, Product ID = quality letter + serial number;
- air temperature: a random walk scaled to sd 2 K around 300 K; process temperature: air + 10 K
  plus a second random walk scaled to sd 1 K;
- torque normal around 40 Nm, sd 10 Nm, never negative; rotational speed from the power overlaid
  with noise. Matzka quotes a 2860 W power, which does not reproduce the published speeds; we
  draw rpm = 930 + 24,610 / torque - 68,090 / torque^2 + normal noise of sd 50 rpm, a fit to the
  published file, so that the failure rates come out like the real file's;
- tool wear grows by 2/3/5 min per product for L/M/H; the tool is replaced at a random wear
  between 200 and 240 min, and fails doing so (TWF) in 51 of 120 replacements;
- HDF: process - air temperature < 8.6 K and speed < 1380 rpm;
- PWF: mechanical power (torque x angular speed) < 3500 W or > 9000 W;
- OSF: tool wear x torque > 11,000 / 12,000 / 13,000 min Nm for L / M / H;
- RNF: 0.1 % of products at random; Machine failure when any mode is set.

The rules are applied in float64 to the values as written (rounded), as in the real file: at a
written difference of exactly 8.6 K the HDF flag follows the rounding error of process - air.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

HEADER = (
    "UDI",
    "Product ID",
    "Type",
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
    "Machine failure",
    "TWF",
    "HDF",
    "PWF",
    "OSF",
    "RNF",
)
QUALITY_SHARE = {"L": 0.5, "M": 0.3, "H": 0.2}
WEAR_STEP_MIN = {"L": 2, "M": 3, "H": 5}
OSF_LIMIT_MIN_NM = {"L": 11_000, "M": 12_000, "H": 13_000}
# Serial numbers as in the real file: one running count per quality variant, offset by UDI.
SERIAL_BASE = {"L": 47_179, "M": 14_859, "H": 29_413}
TOOL_FAILS_ON_REPLACEMENT = 51 / 120


def _random_walk(rng: np.random.Generator, n: int, mean: float, sd: float) -> NDArray[np.float64]:
    walk = np.cumsum(rng.normal(size=n))
    spread = float(walk.std()) or 1.0
    return np.asarray(mean + sd * (walk - walk.mean()) / spread, dtype=np.float64)


def records(n: int = 2000, *, seed: int = 0) -> list[dict[str, str]]:
    """`n` rows as the CSV writes them: column name -> text, in file order."""
    rng = np.random.default_rng(seed)
    qualities = rng.choice(list(QUALITY_SHARE), size=n, p=list(QUALITY_SHARE.values()))
    air_k = np.round(_random_walk(rng, n, 300.0, 2.0), 1)
    process_k = np.round(air_k + 10.0 + _random_walk(rng, n, 0.0, 1.0), 1)
    torque_nm = np.round(np.clip(rng.normal(40.0, 10.0, size=n), 5.0, None), 1)
    speed_rpm = np.round(930.0 + 24_610.0 / torque_nm - 68_090.0 / torque_nm**2 + rng.normal(0.0, 50.0, size=n))

    rows = []
    wear_min, replace_at_min = 0, rng.uniform(200, 240)
    for i in range(n):
        quality = str(qualities[i])
        air, process, speed, torque = (float(v[i]) for v in (air_k, process_k, speed_rpm, torque_nm))
        twf = 0
        tool_wear = wear_min
        if wear_min >= replace_at_min:
            twf = int(rng.random() < TOOL_FAILS_ON_REPLACEMENT)
            wear_min, replace_at_min = 0, rng.uniform(200, 240)
        else:
            wear_min += WEAR_STEP_MIN[quality]
        power_w = torque * speed * 2 * math.pi / 60
        modes = {
            "TWF": twf,
            "HDF": int(process - air < 8.6 and speed < 1380),
            "PWF": int(power_w < 3500 or power_w > 9000),
            "OSF": int(tool_wear * torque > OSF_LIMIT_MIN_NM[quality]),
            "RNF": int(rng.random() < 0.001),
        }
        udi = i + 1
        rows.append(
            {
                "UDI": str(udi),
                "Product ID": f"{quality}{SERIAL_BASE[quality] + udi}",
                "Type": quality,
                "Air temperature [K]": f"{air:.1f}",
                "Process temperature [K]": f"{process:.1f}",
                "Rotational speed [rpm]": f"{speed:.0f}",
                "Torque [Nm]": f"{torque:.1f}",
                "Tool wear [min]": str(tool_wear),
                "Machine failure": str(int(any(modes.values()))),
                **{mode: str(flag) for mode, flag in modes.items()},
            }
        )
    return rows


def to_text(rows: list[dict[str, str]], *, header: tuple[str, ...] = HEADER, bom: bool = False) -> str:
    """The file's text: the header, then one comma-separated line per row, LF line ends."""
    lines = [",".join(header)] + [",".join(row[column] for column in header) for row in rows]
    return ("\ufeff" if bom else "") + "\n".join(lines) + "\n"


def write(path: Path, n: int = 2000, *, seed: int = 0, bom: bool = False) -> Path:
    """Write a synthetic AI4I file of `n` rows to `path` and return the path."""
    path.write_text(to_text(records(n, seed=seed), bom=bom), encoding="utf-8")
    return path
