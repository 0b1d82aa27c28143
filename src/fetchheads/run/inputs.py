"""Where targets come from: arguments, files and stdin, read as a stream.

Input is read in chunks on a thread of its own (``InputThread``), so a slow producer upstream of
a pipe, or a person typing, sees each target fetched at once, and Ctrl-C never waits for a read.
Each line becomes a ``Target`` or, when it is not one, the record of an input error: a bad line
is a result like any other (``read_sources``; the supervisor of ``--workers`` takes each good line
as its checked text instead, which its worker parses: ``read_lines``). Also here: ``--shard
K/N`` (``in_shard``), which picks the lines, and ``--unique`` (``unique_items``), which drops
the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import queue
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from fetchheads.credentials import redact_cut_url, redact_url
from fetchheads.errors import ErrorKind, InputError
from fetchheads.models import ErrorInfo, Result, Target
from fetchheads.targets import (
    MAX_LINE_CHARS,
    LineSplitter,
    OverlongLine,
    canonical_key,
    check_target,
    parse_target,
    undecodable_replaced,
    without_comment,
)
from fetchheads.threads import stop_signals_kept_from_new_threads

READ_SIZE = 64 * 1024
STDIN = "-"

Item = Target | Result


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Where targets come from: the command line (``args``) or a file (``path``, ``-`` = stdin)."""

    args: tuple[str, ...] = ()
    path: str | None = None


def input_error(text: str, message: str, *, where: str | None = None) -> Result:
    """The record for a target that could not become a request (a password in it shown as
    ``***``: the record is printed and stored)."""
    given = redact_url(text)
    given = given if len(given) <= 200 else given[:200] + "…"
    shown = undecodable_replaced(given)
    prefix = f"{undecodable_replaced(where)}: " if where else ""  # a file's name, too
    error = ErrorInfo(ErrorKind.INPUT, prefix + message)
    return Result(target=shown, url=None, error=error, given=given if shown != given else None)


_Taken = TypeVar("_Taken", Target, str)


def to_item(
    text: str,
    default_scheme: str,
    *,
    where: str | None = None,
    take: Callable[..., _Taken] = parse_target,  # type: ignore[assignment]  # _Taken = Target
) -> _Taken | Result:
    """``take(text)`` (``parse_target``, or the supervisor's ``check_target``), or the record of
    the input error it raised."""
    try:
        return take(text, default_scheme=default_scheme)
    except InputError as exc:
        return input_error(text, str(exc), where=where)


def read_sources(sources: Sequence[Source], default_scheme: str) -> AsyncIterator[Item]:
    """Every target of every source, in order, streamed: files are read in chunks on a thread."""
    return _read(sources, default_scheme, parse_target)


def read_lines(sources: Sequence[Source], default_scheme: str) -> AsyncIterator[str | Result]:
    """``read_sources`` for the supervisor of ``--workers``: each line that is a target comes as
    its text, checked (``check_target``) but not parsed, since the worker it goes to parses it;
    a line that is not one comes as its error record, as from ``read_sources``. The text is the
    line as given: a ``Target``'s own text has its password masked."""
    return _read(sources, default_scheme, check_target)


async def _read(
    sources: Sequence[Source], default_scheme: str, take: Callable[..., _Taken]
) -> AsyncIterator[_Taken | Result]:
    """Every line of every source, in order, as ``take`` makes it (raising ``InputError`` for a
    line that is not a target, which then comes as its error record)."""
    reader = InputThread()
    try:
        for source in sources:
            if source.path is None:
                for text in source.args:
                    yield to_item(text, default_scheme, take=take)
                continue
            name = "stdin" if source.path == STDIN else source.path
            try:
                read, close = _open_input(source.path)
            except OSError as exc:
                yield _unreadable(name, exc)
                continue
            try:
                splitter = LineSplitter()
                # The first bytes, held while they may still be the start of a byte-order mark
                # (a pipe may bring FF and FE in two reads); None once they are known.
                start: bytes | None = b""
                while True:
                    # Whatever is available now (at most one read), so a slow producer upstream
                    # of a pipe, or a person typing, sees each target fetched at once.
                    try:
                        chunk = await reader.call(read)
                    except OSError as exc:  # the rest of this input is lost; the run goes on
                        yield _unreadable(name, exc)
                        break
                    data = chunk
                    if start is not None:
                        start += chunk
                        if chunk and _may_become_mark(start):
                            continue
                        marked = _marked_encoding(start)
                        if marked is not None:  # every line would be garbled
                            yield _not_utf8_file(name, *marked)
                            break
                        data, start = start, None
                    lines = splitter.feed(data) if data else []
                    if not chunk:  # the end: the last line, even without its newline
                        lines += splitter.feed(b"")
                    for number, line in lines:
                        if isinstance(line, OverlongLine):
                            record = _overlong(line, f"{name}:{number}")
                            if record is not None:  # None: a comment, however long
                                yield record
                        elif line and not line.startswith("#"):
                            # The FILE:LINE of an error is written only for one.
                            try:
                                item: _Taken | Result = take(line, default_scheme=default_scheme)
                            except InputError as exc:
                                item = input_error(line, str(exc), where=f"{name}:{number}")
                            yield item
                    if not chunk:
                        break
            finally:
                reader.after_reads(close)
    finally:
        reader.close()


def _overlong(line: OverlongLine, where: str) -> Result | None:
    """The record of a line too long to read, showing its start (``None`` for a comment). The
    start is shown without its comment, which may quote anything; a password or a token in it,
    or what may be one where the start is cut before the ``@``, is masked."""
    head = without_comment(line.start)
    if head.startswith("#"):
        return None
    # Cut at its comment, the target in it is whole; else the cut may fall anywhere in it.
    shown = redact_url(head) if head != line.start else redact_cut_url(head)
    return input_error(shown + "…", f"line longer than {MAX_LINE_CHARS} bytes", where=where)


_MARKS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),  # before FF FE: UTF-32LE starts with UTF-16LE's mark
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),  # PowerShell 5's ``>``, Notepad's "Unicode"
    (b"\xfe\xff", "UTF-16"),
)
"""The byte-order marks an input in another encoding than UTF-8 starts with, longest first."""


def _may_become_mark(start: bytes) -> bool:
    """Whether more bytes after ``start`` could make it a longer byte-order mark than it holds."""
    return any(len(start) < len(mark) and mark.startswith(start) for mark, _name in _MARKS)


def _marked_encoding(start: bytes) -> tuple[bytes, str] | None:
    """The byte-order mark ``start`` begins with and its encoding's name, if any."""
    return next(((mark, name) for mark, name in _MARKS if start.startswith(mark)), None)


def _not_utf8_file(name: str, mark: bytes, encoding: str) -> Result:
    """A UTF-16 or UTF-32 input is one record saying so, not one cryptic error per line."""
    shown = " ".join(f"{byte:02X}" for byte in mark)
    message = f"{name} is {encoding} (it starts with the byte-order mark {shown}): save it as UTF-8"
    return input_error(name, message)


def _unreadable(name: str, exc: OSError) -> Result:
    """A failed read of an input is one record, like a bad line: the run goes on without it."""
    return input_error(name, f"cannot read {name}: {exc.strerror or exc}")


class InputThread:
    """One daemon thread for the blocking reads of input files and stdin.

    Not a ``ThreadPoolExecutor``: leaving its ``with`` block, and the interpreter's exit, both wait
    for a read in progress, and a read of a terminal, or of a pipe whose writer is alive but quiet,
    may never return: Ctrl-C or SIGTERM would then hang until the user pressed Ctrl-D. A daemon
    thread is left behind at exit instead. Reads go to the file descriptor (``os.read``), not to a
    buffered file object, so the abandoned thread holds no lock that interpreter shutdown needs.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def call(self, read: Callable[[], bytes]) -> bytes:
        """``read()`` on the thread; cancelling the caller does not wait for it to return."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()

        def job() -> None:
            try:
                data = read()
            except (OSError, ValueError) as exc:  # a read error, or a file closed under it
                _hand_over(loop, future.set_exception, future, exc)
            else:
                _hand_over(loop, future.set_result, future, data)

        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name="fetchheads-input", daemon=True
            )
            with stop_signals_kept_from_new_threads():
                self._thread.start()
        self._jobs.put(job)
        return await future

    def after_reads(self, action: Callable[[], None]) -> None:
        """Run ``action`` (closing a file) once the read in progress is over: never under it."""
        if self._thread is None:
            action()
        else:
            self._jobs.put(action)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def close(self) -> None:
        """The thread ends after the read in progress, if any; nobody waits for it."""
        self._jobs.put(None)


def _hand_over(
    loop: asyncio.AbstractEventLoop,
    setter: Callable[[Any], None],
    future: asyncio.Future[bytes],
    value: object,
) -> None:
    def settle() -> None:
        if not future.done():  # the caller may have been cancelled meanwhile
            setter(value)

    # The loop is closed when the run ended while this read was blocked: nobody is waiting.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle)


def in_shard(item: Item | str, shard: int, shards: int, *, default_scheme: str) -> bool:
    """Whether ``item`` belongs to shard ``shard`` (1..``shards``) of ``--shard K/N``.

    The hash is of the normalised URL (``http://example.com/``: scheme, IDNA host, port and path
    as fetchheads sends them), so every spelling of one target lands in the same shard, on every
    machine, with no seed to share. A line that is not a valid target is sharded by its text, so
    its error record, too, comes from exactly one shard. blake2b because it is in the standard
    library, fast, and stable across Python versions and platforms (``hash()`` is salted).
    """
    import hashlib  # only --shard pays for the import

    key = _url(item, default_scheme)
    digest = hashlib.blake2b((key or "").encode("utf-8", "surrogateescape"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % shards == shard - 1


def _url(item: Item | str, default_scheme: str) -> str | None:
    """What ``--shard`` and ``--unique`` know a target by (a line from ``read_lines`` is one,
    not yet parsed); for a line that is no target, the text of its record."""
    if isinstance(item, Target):
        return item.url
    if isinstance(item, str):
        return canonical_key(item, default_scheme=default_scheme)
    return item.target


_Item = TypeVar("_Item", Item, str | Result)


async def select_shard(
    items: AsyncIterator[_Item], shard: int, shards: int, *, default_scheme: str
) -> AsyncIterator[_Item]:
    async for item in items:
        if in_shard(item, shard, shards, default_scheme=default_scheme):
            yield item


async def unique_items(items: AsyncIterator[_Item], *, default_scheme: str) -> AsyncIterator[_Item]:
    """``--unique``: each target once, the first time it is read. Its identity is the URL it
    is sent to (``targets.canonical_key``, the key ``--shard`` hashes: ``Example.COM:80`` and
    ``http://example.com/`` are one). A line that is no target is always passed on: each is an
    error at its own place (two bad lines can look alike once a password in them is masked)."""
    from fetchheads.targets import FirstSeen  # only --unique pays for it

    first_seen = FirstSeen()
    async for item in items:
        if isinstance(item, Result) or first_seen(_url(item, default_scheme) or ""):
            yield item


def _open_input(path: str) -> tuple[Callable[[], bytes], Callable[[], None]]:
    """``(read, close)`` for a path, ``-`` being stdin; ``read()`` returns at most one read."""
    if path == STDIN:
        stream = sys.stdin.buffer
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # no descriptor: CliRunner's BytesIO
            return functools.partial(_read_some, stream), lambda: None
        return functools.partial(os.read, fd, READ_SIZE), lambda: None
    # Unbuffered: every read is one os.read. Closed through the returned ``close``.
    raw = open(path, "rb", buffering=0)  # noqa: SIM115
    return functools.partial(raw.read, READ_SIZE), raw.close


def _read_some(stream: Any) -> bytes:
    read1 = getattr(stream, "read1", None)
    return bytes(read1(READ_SIZE) if read1 is not None else stream.read(READ_SIZE))
