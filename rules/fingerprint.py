"""Alert fingerprints, byte-for-byte the same as Alertmanager's.

An alert's fingerprint is FNV-1a 64 over its labels sorted by name, each written as
``name 0xFF value 0xFF``, printed as 16 lower-case hex digits (``prometheus/common``
``model/signature.go`` ``labelSetToFingerprint``). The empty label set hashes to the FNV offset
basis, ``cbf29ce484222325``. Using the same function means our alert ids match the
``fingerprint`` field Alertmanager shows for the same label set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

logger = logging.getLogger(__name__)

_FNV_OFFSET_64 = 0xCBF29CE484222325
_FNV_PRIME_64 = 0x100000001B3
_MASK_64 = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = b"\xff"


def _fnv1a_add(h: int, data: bytes) -> int:
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME_64) & _MASK_64
    return h


def fingerprint(labels: Mapping[str, str]) -> str:
    """Return the Alertmanager fingerprint of ``labels`` as 16 hex digits.

    Labels are sorted by name (code point order, which equals Go's byte order on UTF-8);
    names and values are hashed as UTF-8. Never raises for a mapping of strings.
    """
    h = _FNV_OFFSET_64
    for name in sorted(labels):
        h = _fnv1a_add(h, name.encode("utf-8"))
        h = _fnv1a_add(h, _SEPARATOR)
        h = _fnv1a_add(h, labels[name].encode("utf-8"))
        h = _fnv1a_add(h, _SEPARATOR)
    return f"{h:016x}"
