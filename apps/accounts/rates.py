"""API rates as DRF writes them (`120/minute`), read once here for the settings (which check them at start)
and the throttle (which applies them). No Django import: the settings read it before Django is set up."""

from __future__ import annotations

# DRF reads a period by its first letter only ("minute", "min" and "m" alike).
PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """`<n>/<period>` as (n, seconds): n a whole number of 1 or more, the period second, minute, hour or day.
    ValueError for anything else."""
    count, slash, period = rate.partition("/")
    seconds = PERIOD_SECONDS.get(period[:1]) if slash and "/" not in period else None
    if seconds is None or int(count) < 1:  # int() raises ValueError for a count that is not a number
        raise ValueError(f"not a rate: {rate!r}")
    return int(count), seconds
