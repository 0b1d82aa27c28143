"""How counts read in the messages and views of every layer. Pure."""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """``1 run``, ``2 runs``: messages count in English."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
