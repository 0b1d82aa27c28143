"""Writing results: thin wrappers around stdout that batch writes and survive a closed pipe.

Where stdout is a descriptor, the bytes go through a ``Writer`` (``render.writer``): its thread
does the writes, so a reader that stops reading never stops the event loop, and the sink's
``throttle`` tells the run when to stop starting targets. Without one (an in-memory stream, as
in tests), writes are direct: they cannot block.

A failed write (a reader that went away, a full disk) is remembered in ``error`` and reported to
``on_error`` once, so the run can stop and ``cli`` can say what happened; it never surfaces as a
traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from fetchheads.models import Result
from fetchheads.render.safe import terminal_safe
from fetchheads.render.writer import Writer, may_wait

if TYPE_CHECKING:  # rich is imported where it is used: plain and jsonl runs never load it
    from rich.console import Console
    from rich.table import Table

    from fetchheads.render.sort import Key, SortOrder

FLUSH_BYTES = 64 * 1024
PROGRESS_DELAY = 1.0
"""Seconds before the progress line first appears: a short run finishes without it."""
PROGRESS_REFRESH = 0.1
"""Seconds between redraws: smooth to the eye, and no cost at 10,000 results a second."""
_ERASE_LINE = "\r\x1b[2K"


def descriptor(stream: IO[Any] | None) -> int | None:
    """The file descriptor under ``stream``, or None (closed, or an in-memory stream)."""
    try:
        return stream.fileno() if stream is not None else None
    except (AttributeError, OSError, ValueError):
        return None


class Sink:
    """Base: remembers the first write error and tells the run to stop.

    With a ``writer`` and a descriptor ``fd`` whose reader may keep a write waiting, output goes
    through the writer, and ``throttle`` is that writer: paused while the reader is behind."""

    def __init__(
        self,
        on_error: Callable[[], None] = lambda: None,
        *,
        writer: Writer | None = None,
        fd: int | None = None,
    ) -> None:
        self.error: OSError | None = None
        self._on_error = on_error
        self.writer = writer
        """The run's writer, also the progress line's; closed by ``close``."""
        self.throttle = writer if fd is not None and may_wait(fd) else None
        self._fd = fd if fd is not None else -1
        if self.throttle is not None:
            self.throttle.on_error(self._fd, self._failed)
        self.before_write: Callable[[], None] = lambda: None
        """Called before each write to stdout: the progress line erases itself there..."""
        self.after_write: Callable[[], None] = lambda: None
        """...and comes back below what was written."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The run's event loop, given by the run that emits into this sink, for the flush it
        schedules once a turn: asking for it is a system call on CPython 3.11 (``getpid``),
        once a result where every result is a turn of its own (``-c 1``). ``None``: asked."""

    def set_on_error(self, on_error: Callable[[], None]) -> None:
        self._on_error = on_error

    def _failed(self, exc: OSError) -> None:
        if self.error is None:
            self.error = exc
            self._on_error()

    def emit(self, result: Result) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write what is pending (after the run); may block until the reader has taken it."""
        writer = self.writer
        if writer is not None:
            writer.close()
            if self.error is None and self._fd in writer.errors:
                self.error = writer.errors[self._fd]  # found by the last write


class TextSink(Sink):
    """The line formats (plain, jsonl, table, csv, tsv, -w): text from ``formatter``, encoded
    once, flushed when the event loop is idle (so a burst of results is one write) or when 64 KiB
    are pending. ``preamble`` (a header row) is written first, once, even when no result comes.
    A ``formatter`` may return ``""``: a result not shown (``selected``).

    With ``order`` (``--sort``) each shown result is held, as its encoded text and its sort key,
    and ``close`` writes them all in that order after the header row: nothing is written while
    the run goes."""

    def __init__(
        self,
        stream: BinaryIO,
        formatter: Callable[[Result], str],
        *,
        writer: Writer | None = None,
        preamble: str = "",
        order: SortOrder | None = None,
    ) -> None:
        super().__init__(writer=writer, fd=descriptor(stream))
        self._stream = stream
        self._formatter = formatter
        first = preamble.encode("utf-8", "surrogateescape")
        self._pending: list[bytes] = [first] if first else []
        self._size = len(first)
        self._scheduled = False
        self._order = order
        self._held: list[tuple[Key, bytes]] = []

    def emit(self, result: Result) -> None:
        if self.error is not None:
            return
        data = self._formatter(result).encode("utf-8", "surrogateescape")
        if not data:
            return
        if self._order is not None:
            self._held.append((self._order.key(result), data))
            return
        # emit_bytes, spelled out: one call fewer for every result.
        self._pending.append(data)
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            (self.loop or asyncio.get_running_loop()).call_soon(self.flush)

    def emit_bytes(self, data: bytes) -> None:
        """Output already formatted (a worker's records, ``run.supervisor``), batched alike."""
        if self.error is not None:
            return
        self._pending.append(data)
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            (self.loop or asyncio.get_running_loop()).call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self.error is not None or not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        self.before_write()
        if self.throttle is not None:
            self.throttle.write(self._fd, data)
        else:
            try:
                self._stream.write(data)
                self._stream.flush()
            except OSError as exc:  # BrokenPipeError, ENOSPC, EIO ...
                self._failed(exc)
                return
        self.after_write()

    def close(self) -> None:
        if self._order is not None and self._held:
            rows = self._order.sort(self._held)
            self._held.clear()
            for data in rows:  # in writes of FLUSH_BYTES, not one copy of everything
                self._pending.append(data)
                self._size += len(data)
                if self._size >= FLUSH_BYTES:
                    self.flush()
        self.flush()
        super().close()


def selected(
    formatter: Callable[[Result], str], selector: Callable[[Result], bool] | None
) -> Callable[[Result], str]:
    """``formatter`` for the results ``selector`` keeps, ``""`` for the others."""
    if selector is None:
        return formatter

    def show(result: Result) -> str:
        return formatter(result) if selector(result) else ""

    return show


class PrettySink(Sink):
    """pretty: one rich block per result, printed as it arrives (those ``selector`` keeps)."""

    def __init__(
        self,
        console: Console,
        *,
        waterfall: bool = False,
        writer: Writer | None = None,
        selector: Callable[[Result], bool] | None = None,
    ) -> None:
        from fetchheads.render.pretty import render_result

        super().__init__(writer=writer, fd=descriptor(console.file))
        if self.throttle is not None:
            console.file = cast("IO[str]", WriterFile(self.throttle, console.file))
        self._console = console
        self._waterfall = waterfall
        self._render = render_result
        self._selector = selector

    def emit(self, result: Result) -> None:
        if self.error is not None:
            return
        if self._selector is not None and not self._selector(result):
            return
        self.before_write()
        try:
            self._console.print(self._render(result, waterfall=self._waterfall))
            self._console.file.flush()
        except OSError as exc:
            self._failed(exc)
        else:
            self.after_write()


class TextfileSink(Sink):
    """prometheus: every result (that ``selector`` keeps) added to one exposition, written whole
    by ``close``. Nothing is written while the run goes, so there is nothing to throttle."""

    def __init__(
        self, stream: BinaryIO, *, selector: Callable[[Result], bool] | None = None
    ) -> None:
        from fetchheads.render.prometheus import PrometheusTextfile

        super().__init__()
        self._stream = stream
        self._textfile = PrometheusTextfile()
        self._selector = selector

    def emit(self, result: Result) -> None:
        if self._selector is None or self._selector(result):
            self._textfile.add(result)

    def close(self) -> None:
        try:
            self._stream.write(self._textfile.render().encode("utf-8", "surrogateescape"))
            self._stream.flush()
        except OSError as exc:
            self._failed(exc)


class OutputFile:
    """``-o FILE``: where results go instead of stdout, opened before the run (so a path that
    cannot be written is a usage error). The line formats are written to FILE as they come; a
    format read whole (``whole``: prometheus) to a temporary file beside it, renamed over FILE by
    ``finish`` only when the run was not stopped: a reader (node_exporter's textfile collector)
    sees the old file or the new one, never half of one.

    Opening changes nothing that cannot be taken back: an existing FILE is emptied by ``begin``,
    once the run is sure to go ahead, and ``abandon`` removes what opening created (a usage
    error found later, such as a refused --db, leaves no trace)."""

    def __init__(self, path: str, *, whole: bool = False) -> None:
        self.path = path
        self._temporary: str | None = None
        self._replaced = path  # what a whole format's temporary file is renamed over
        stream = _stream_fd(path)
        self._through = stream is not None
        self._created = False
        if whole and stream is None:
            whole = self._whole_target(path)
        if stream is not None:
            # /dev/stdout, /dev/fd/N: the same open file as the descriptor, not a new open of
            # what is behind it, which would start writing at its offset 0 (after a shell's
            # '>>', or beside '2>&1' on the same file, writing over what is there).
            fd = os.dup(stream)
        elif whole:
            import tempfile  # -o with a whole format only (it brings shutil and random)

            directory = os.path.dirname(self._replaced)
            try:
                fd, self._temporary = tempfile.mkstemp(
                    prefix=f".{os.path.basename(self._replaced)}.", suffix=".tmp", dir=directory
                )
            except OSError as exc:  # FILE itself may be writable: say what could not be made
                where = directory or "."
                raise OSError(
                    exc.errno,
                    f"{exc.strerror} (a temporary file in {where}, to replace it whole)",
                ) from None
        else:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                self._created = True
            except FileExistsError:
                # Not emptied yet (see begin); O_CREAT: a dangling symlink's target is made.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
        self.stream: BinaryIO = os.fdopen(fd, "wb")

    def _whole_target(self, path: str) -> bool:
        """Whether FILE is replaced whole (and ``_replaced``: the file renamed over): a regular
        file, or none yet; through symlinks only when each link on the way is this user's, to
        the file they end at (the links stay). Anything else is written through, as the line
        formats are: a FIFO or a device (renamed over, a FIFO's reader would get nothing), a
        link to /dev/stdout, and a link of another user's (followed and replaced, a link
        planted in a shared directory would bypass the kernel's protected_symlinks, which
        open() obeys)."""
        current = os.path.abspath(path)
        for _ in range(MAX_LINKS):
            try:
                link = os.lstat(current)
            except FileNotFoundError:
                break  # a new file (or a dangling link's target): made whole
            if not stat.S_ISLNK(link.st_mode):
                if not stat.S_ISREG(link.st_mode):
                    return False
                break
            if link.st_uid != os.geteuid():
                return False
            current = os.path.normpath(os.path.join(os.path.dirname(current), os.readlink(current)))
            if current.startswith(("/dev/", "/proc/")):  # /dev/stdout and the like
                return False
        else:
            return False  # a loop of links: open() says so
        self._replaced = current
        return True

    def begin(self) -> None:
        """The run goes ahead: an existing regular FILE loses its old content (as ``>``); not
        one reached through /dev/stdout or /proc: that is the shell's to empty (``>``) or not
        (``>>``)."""
        if not self._through and stat.S_ISREG(os.fstat(self.stream.fileno()).st_mode):
            self.stream.truncate(0)

    def abandon(self) -> None:
        """The run is refused before it began: close, and remove the file opening created."""
        self.finish(keep=False)
        if self._created:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def finish(self, *, keep: bool = True) -> None:
        """Close the file; for a whole one, put it in place (``keep``) or remove it."""
        with contextlib.suppress(OSError):
            self.stream.close()
        temporary = self._temporary
        if temporary is None:
            return
        self._temporary = None
        try:
            if keep:
                os.chmod(temporary, _mode_of(self._replaced))
                os.replace(temporary, self._replaced)
                return
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)  # no stray .FILE.tmp beside what could not be replaced
            raise
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _mode_of(path: str) -> int:
    """The permissions for the file that replaces ``path``: the old file's, as an editor's save
    keeps them; for a new one what ``open`` would give (mkstemp's 0600 is no file to share)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


_STREAM = re.compile(r"/dev/(?:std(out|err)|fd/(\d+))|/proc/(?:self|thread-self|(\d+))/fd/(\d+)")
_STANDARD = {"out": 1, "err": 2}
MAX_LINKS = 40
"""Symlinks followed in a row before a path counts as a loop (Linux's own limit)."""


def _stream_fd(path: str) -> int | None:
    """The descriptor of this process that ``path`` names (``/dev/stdout``, ``/dev/fd/3``,
    ``/proc/self/fd/1``), or None for a path that names a file."""
    match = _STREAM.fullmatch(os.path.normpath(os.path.abspath(path)))
    if match is None:
        return None
    standard, fd, pid, proc_fd = match.groups()
    if standard is not None:
        return _STANDARD[standard]
    if fd is not None:
        return int(fd)
    if pid is not None and int(pid) != os.getpid():
        return None  # another process's descriptor: a path like any other
    return int(proc_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class WriterFile:
    """A text file for rich's ``Console`` whose writes go to a ``Writer``: encoded as the file it
    stands for would encode them; a terminal when that file is one."""

    def __init__(self, writer: Writer, like: IO[str]) -> None:
        self._writer = writer
        self._like = like
        self._fd = like.fileno()
        self.encoding: str = getattr(like, "encoding", None) or "utf-8"
        self.errors: str = getattr(like, "errors", None) or "strict"

    def write(self, text: str) -> int:
        self._writer.write(self._fd, text.encode(self.encoding, self.errors))
        return len(text)

    def flush(self) -> None:
        """Nothing to do: the writer's thread writes as soon as it can."""

    def isatty(self) -> bool:
        return self._like.isatty()

    def fileno(self) -> int:
        return self._fd


class StderrConsole:
    """rich's ``Console`` on stderr, made on first use: a quiet plain or jsonl run, which prints
    nothing there, never imports rich (~25 ms of every start-up).

    ``print`` writes each message as one line, never wrapped at the console's width (80 columns
    when stderr is a file or a pipe: a cron log grepped for a message must find it whole), and
    with control characters escaped (a file name or target may hold them, as server text does).
    """

    def __init__(self, **options: Any) -> None:
        self._console: Console | None = None
        self._options = options  # Environment.console_options(): a width, colours

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                stderr=True, highlight=False, markup=False, emoji=False, **self._options
            )
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        safe = [terminal_safe(item) if isinstance(item, str) else item for item in objects]
        options.setdefault("soft_wrap", True)
        self.console.print(*safe, **options)


class Tally(Protocol):
    """What the progress line shows of a run's counts (``run.summary.Summary``)."""

    @property
    def targets(self) -> int: ...

    def progress(self, read: int, elapsed: float) -> str: ...


class ProgressLine:
    """A transient one-line progress display on stderr: a bar, done/read, ok, failed, rate.

    Not rich's ``Live``: that refreshes from a thread and, to keep its place, sends stdout through
    its own console (to stderr). Here stdout stays untouched and everything runs on the event
    loop: the line is erased before each write to stdout and drawn again after it, so on a shared
    terminal results scroll above it, and in a file or pipe stdout is byte-for-byte what it would
    be without it. It first appears after ``PROGRESS_DELAY`` and is re-rendered every
    ``PROGRESS_REFRESH``; in between, redraws repeat the last rendering.
    """

    def __init__(self, console: Console, summary: Tally, *, writer: Writer | None = None) -> None:
        self._console = console
        self._summary = summary
        # Through the writer that stdout uses, when there is one: on a shared terminal the line
        # is erased before results are written and drawn after them, and a terminal that is not
        # being read (Ctrl-S) stops the writer's thread, not the event loop.
        self._out: WriterFile | None = None
        fd = descriptor(console.file)
        if writer is not None and fd is not None and may_wait(fd):
            self._out = WriterFile(writer, console.file)
            writer.on_error(fd, self._stderr_failed)
        self.read = 0
        self._started = time.monotonic()
        self._line: str | None = None  # the last rendering, once the line has appeared
        self._drawn = False
        self._broken = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(PROGRESS_DELAY, self._tick)

    def _tick(self) -> None:
        self._line = self._render_line()
        self._drawn = False
        self.restore()
        if not self._broken:
            self._timer = asyncio.get_running_loop().call_later(PROGRESS_REFRESH, self._tick)

    def render(self) -> Table:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        summary = self._summary
        read = max(self.read, summary.targets)
        line = Table.grid(padding=(0, 1))
        line.add_column(no_wrap=True)
        line.add_column(no_wrap=True, overflow="ellipsis")
        line.add_row(
            ProgressBar(total=read or None, completed=summary.targets, width=24),
            Text(summary.progress(read, time.monotonic() - self._started), style="dim"),
        )
        return line

    def _render_line(self) -> str:
        console = self._console
        with console.capture() as capture:
            # One cell short of the width: a full line would wrap and leave a copy behind.
            console.print(self.render(), end="", width=max(console.width - 1, 20))
        return capture.get().rstrip("\n")

    def clear(self) -> None:
        """Erase the line (before stdout is written)."""
        if self._drawn and not self._broken:
            self._drawn = False
            self._write(_ERASE_LINE)

    def restore(self) -> None:
        """Draw the line again (after stdout was written), if it has appeared."""
        if self._line is not None and not self._drawn and not self._broken:
            self._drawn = True
            self._write(_ERASE_LINE + self._line)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.clear()
        self._line = None

    def _write(self, text: str) -> None:
        if self._out is not None:
            self._out.write(text)
            return
        try:
            self._console.file.write(text)
            self._console.file.flush()
        except (OSError, ValueError):  # stderr gone: the progress line is not worth a failure
            self._broken = True

    def _stderr_failed(self, exc: OSError) -> None:
        self._broken = True
