"""How counts read in the messages and views of every layer. Pure."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """``1 run``, ``2 runs``: messages count in English."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def days_left_words(days: int) -> str:
    """Whole days to a moment, rounded down: ``3 days``, ``1 day``, ``less than a day`` (not
    ``0 days``, which reads as already past)."""
    return "less than a day" if days == 0 else counted(days, "day")


def lifetime_words(days: float, not_before: str | None, not_after: str | None) -> str:
    """A certificate's lifetime as an adjective: ``90-day``, and under a day ``12-hour`` or
    ``30-minute`` (not ``0-day``), worked out from its ISO 8601 dates when both are known, as
    ``days`` has two decimals only."""
    if days >= 1:
        return f"{days:.0f}-day"
    seconds = days * 86_400
    if not_before and not_after:
        from datetime import datetime  # certificates under a day only

        seconds = (
            datetime.fromisoformat(not_after) - datetime.fromisoformat(not_before)
        ).total_seconds()
    minutes = max(1, round(seconds / 60))
    if minutes >= 60:  # 59 min 45 s is a 1-hour lifetime, not a 60-minute one
        return f"{seconds / 3_600:.0f}-hour"
    return f"{minutes}-minute"
