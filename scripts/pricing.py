"""A public AWS price with its source, and the units AWS meters in, for scripts/costs.py and its parts."""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730
"""AWS's pricing examples' month."""
GB = 1024**3
TAKEN = "2026-11-28"
"""When the prices were read (docs/costs.md, "Prices")."""


@dataclass(frozen=True)
class Price:
    """One public price: `usd` per `per` units of `unit`, us-east-1."""

    usd: float
    per: float
    unit: str
    source: str
    verified: str
    """How it was checked, or 'NOT VERIFIED: ...' and why (docs/costs.md lists them)."""
    taken: str = TAKEN

    @property
    def rate(self) -> float:
        """US$ per single unit."""
        return self.usd / self.per
