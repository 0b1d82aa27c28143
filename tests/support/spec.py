"""Checking the messages of refused --fields, -w and filter values."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fetchheads.render.fields import SpecError


def refusal(call: Callable[[], object]) -> str:
    """The message of the ``SpecError`` that ``call()`` raises, checked to be one line."""
    with pytest.raises(SpecError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message
    return message
