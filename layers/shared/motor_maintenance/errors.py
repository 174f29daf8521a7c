"""Domain exceptions: adapters translate AWS errors into these, handlers decide what to do."""

from __future__ import annotations

from typing import Any


class MaintenanceError(Exception):
    """Base of every error the domain raises on purpose."""


class VersionConflict(MaintenanceError):
    """Another invocation saved the motor's state first (optimistic lock lost)."""

    def __init__(self, message: str, current: Any = None) -> None:
        super().__init__(message)
        self.current = current
        """The record as the rival stored it, when the store returned it with the conflict; None: read it."""


class ConflictPersisted(MaintenanceError):
    """The state kept changing under us after every retry; the invocation is retried as a whole."""


class StoreUnavailable(MaintenanceError):
    """The state store could not be read or written."""


class PredictionUnavailable(MaintenanceError):
    """The model endpoint failed, timed out, throttled or answered nonsense."""


class PublishFailed(MaintenanceError):
    """An alarm event or alert could not be delivered."""


class ConfigUnavailable(MaintenanceError):
    """The detector configuration could not be read and none was loaded before."""


class ArchiveUnavailable(MaintenanceError):
    """Readings could not be put into the archive's stream; their batch is delivered again."""
