"""Byte rates written the way people write them: "20M", "1.5G", "500k", "2MiB"."""

from __future__ import annotations

import re
from decimal import Decimal

_BANDWIDTH_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(i?))?(b?)(?:/s)?\s*", re.I)
BANDWIDTH_HINT = 'bytes per second: 0 (unlimited), an integer, or "500k", "20M", "1.5G", "2MiB"'


def parse_bandwidth(value: str | int) -> int:
    """Bytes/s from an int or "20M" style text: K/M/G(B) = 1000**n, KiB/MiB/GiB = 1024**n."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _BANDWIDTH_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"bandwidth {value!r} is not understood; use {BANDWIDTH_HINT}")
    number, prefix, binary, _ = match.groups()
    power = " kmgt".index(prefix.lower()) if prefix else 0
    amount = Decimal(number) * ((1024 if binary else 1000) ** power)
    if 0 < amount < 1:  # would truncate to 0, which means unlimited: surely not meant
        raise ValueError(f"bandwidth {value!r} is below 1 byte/s; use 0 for unlimited")
    return int(amount)
