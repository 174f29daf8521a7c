"""Bad input, refused the same way by every handler: a log line with the reason and a bounded preview, nothing raised.

Nothing is raised, so nothing is retried: delivering the same event again would not make it valid. The
caller counts the rejection under its own metric (ReadingsRejected, ActionsRejected, AlarmEventsRejected).
"""

from __future__ import annotations

import reprlib
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from motor_lambda.responses import Rejected
from motor_maintenance.telemetry import describe_validation_error


def rejected(message: str, event: Any, exc: Exception, logger: Logger, **keys: Any) -> Rejected:
    """Log the rejection (`message`, its reason, a preview of the payload, `keys`) and the answer that says why."""
    reason = rejection_reason(exc)
    logger.warning(message, reason=reason, **keys, payload_preview=payload_preview(event))
    return Rejected(reason=reason)


def rejection_reason(exc: Exception) -> str:
    """One line saying which fields are wrong and why."""
    return describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)


class _Preview(reprlib.Repr):
    """reprlib's bounded repr; an integer over 1000 bits long is named by its size (str() of 4,301 digits raises)."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 1000:
            return f"<int of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_PREVIEW = _Preview()
# Four levels, a few items of each: enough to recognise a payload. A plain repr() of a payload
# nested ~1000 deep raises RecursionError on Python 3.11, and one of 20,000 fields costs 256 KB.
_PREVIEW.maxlevel, _PREVIEW.maxdict, _PREVIEW.maxlist, _PREVIEW.maxtuple = 4, 20, 10, 10
_PREVIEW.maxstring, _PREVIEW.maxother = 200, 80


def payload_preview(payload: Any, limit: int = 500) -> str:
    """A short repr of untrusted input for a log line: bounded in depth and size, ASCII, never raising.

    ASCII because the log is strict UTF-8 (a lone surrogate, which JSON can spell, cannot be written)
    and because an escaped look-alike (``mot\\u043er-001``) shows what it is.
    """
    return _PREVIEW.repr(payload).encode("ascii", "backslashreplace").decode("ascii")[:limit]
