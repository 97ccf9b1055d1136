"""The store's error type, in a module of its own so light commands can catch it cheaply."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be opened or upgraded; the message is one actionable line."""
