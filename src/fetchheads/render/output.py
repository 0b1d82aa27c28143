"""Writing results: thin wrappers around stdout that batch writes and survive a closed pipe.

A failed write (a reader that went away, a full disk) is remembered in ``error`` and reported to
``on_error`` once, so the run can stop and ``cli`` can say what happened; it never surfaces as a
traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import BinaryIO

from rich.console import Console

from fetchheads.models import Result
from fetchheads.render.pretty import render_result

FLUSH_BYTES = 64 * 1024


class Sink:
    """Base: remembers the first write error and tells the run to stop."""

    def __init__(self, on_error: Callable[[], None] = lambda: None) -> None:
        self.error: OSError | None = None
        self._on_error = on_error

    def set_on_error(self, on_error: Callable[[], None]) -> None:
        self._on_error = on_error

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            self.error = exc
            self._on_error()

    def emit(self, result: Result) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush what is pending (after the run)."""


class TextSink(Sink):
    """plain and jsonl: text from ``formatter``, encoded once, flushed when the event loop is
    idle (so a burst of results is one write) or when 64 KiB are pending."""

    def __init__(self, stream: BinaryIO, formatter: Callable[[Result], str]) -> None:
        super().__init__()
        self._stream = stream
        self._formatter = formatter
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def emit(self, result: Result) -> None:
        if self.error is not None:
            return
        data = self._formatter(result).encode("utf-8", "surrogateescape")
        self._pending.append(data)
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self.error is not None or not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        try:
            self._stream.write(data)
            self._stream.flush()
        except OSError as exc:  # BrokenPipeError, ENOSPC, EIO ...
            self._failed(exc)

    def close(self) -> None:
        self.flush()


class PrettySink(Sink):
    """pretty: one rich block per result, printed as it arrives."""

    def __init__(self, console: Console, *, waterfall: bool = False) -> None:
        super().__init__()
        self._console = console
        self._waterfall = waterfall

    def emit(self, result: Result) -> None:
        if self.error is not None:
            return
        try:
            self._console.print(render_result(result, waterfall=self._waterfall))
        except OSError as exc:
            self._failed(exc)
