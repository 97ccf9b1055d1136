"""The board's one input error: a value from a form, query or JSON body that is not acceptable.

Controllers turn it into a 400 naming ``field`` (JSON) or an inline form error (HTML).
"""

from __future__ import annotations


class InputError(ValueError):
    """A value that is not acceptable; ``field`` names it, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    @classmethod
    def from_message(cls, message: str, default_field: str) -> InputError:
        """Split a ``"field: reason"`` message (``daemon.notify.silences`` style)."""
        head, sep, tail = message.partition(": ")
        if sep and head and " " not in head:
            return cls(head, tail)
        return cls(default_field, message)
