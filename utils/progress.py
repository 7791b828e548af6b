"""Live progress of a run, per object: the board tasks report to, and the display a person watches.

Tasks call ``report_progress`` from any thread. With no display attached it returns after one attribute read, so
Prefect workers and tests pay nothing. ``progress_display`` attaches, for one run, a rich Live table when the stream is
a terminal, or plain ``progress ...`` lines every few seconds when it is not (CI, cron, a pipe): never escape codes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Literal, Protocol, cast

from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

__all__ = [
    "ObjectProgress",
    "ProgressLine",
    "ProgressReport",
    "Status",
    "Step",
    "format_duration",
    "format_progress_line",
    "merge_report",
    "progress_display",
    "progress_line",
    "progress_snapshot",
    "report_progress",
]

Step = Literal["extract", "replica", "phase1", "qa"]
Status = Literal["running", "done", "failed"]
Clock = Callable[[], float]

NOTE_MAX_CHARS = 120  # a note is a hint (the first line of an error); the run's table and logs carry the rest


@dataclass(frozen=True)
class ProgressReport:
    """One ``report_progress`` call, as the board receives it."""

    object_name: str
    step: Step
    status: Status = "running"
    rows: int | None = None
    expected: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class ObjectProgress:
    """An object's entry on the board: its current step and the latest counts reported for it."""

    object_name: str
    step: Step
    status: Status
    rows: int | None
    expected: int | None
    note: str | None
    step_started: float  # clock value when this step began, or began again (a retry, an extract restarted)
    updated: float  # clock value of the latest report: a finished step's end
    serial: int  # board-wide report number: lets a display tell what changed since it last looked


@dataclass(frozen=True)
class ProgressLine:
    """What a display shows for one object; rate and ETA only where they mean something."""

    object_name: str
    step: Step
    status: Status
    rows: int | None
    expected: int | None
    seconds: float  # in this step so far, or the finished step's duration
    rate: float | None  # rows/s, extracts only
    eta_seconds: float | None  # running extracts with a known expected count only
    note: str | None


# ----------------------------------------------------------------------------------------------- pure core


def _clean_note(note: str | None) -> str | None:
    """First line, no control characters (an error text must not smuggle escape codes into a log), bounded."""
    lines = (note or "").strip().splitlines()
    if not lines:
        return None
    text = "".join(c if c.isprintable() else " " for c in lines[0])
    return text if len(text) <= NOTE_MAX_CHARS else text[: NOTE_MAX_CHARS - 1] + "…"


def merge_report(previous: ObjectProgress | None, report: ProgressReport, *, now: float, serial: int,
                 open_since: float | None = None) -> ObjectProgress:
    """The object's entry after ``report``.

    A new step, a step run again after done/failed, or rows going down (an extract restarted from scratch) restart
    the step's clock, except a step coming back to the line while still open (``open_since``: when it began; Phase 1
    and QA of one object run at the same time and take turns on its line). Counts left out keep their last value,
    so Phase 1 after a 5,000-row extract still shows 5,000; but an expected count belongs to the rows it was given
    with: a restarted step that reports rows without one has none (a side query's 0 rows are not 0/5,000).
    """
    if previous is None:
        return ObjectProgress(report.object_name, report.step, report.status, report.rows, report.expected,
                              _clean_note(report.note), step_started=open_since if open_since is not None else now,
                              updated=now, serial=serial)
    restarted = (report.step != previous.step
                 or (report.status == "running" and previous.status != "running")
                 or (report.rows is not None and previous.rows is not None and report.rows < previous.rows))
    rows = previous.rows if report.rows is None else report.rows
    if report.expected is not None:
        expected: int | None = report.expected
    else:
        expected = None if restarted and report.rows is not None else previous.expected
    if not restarted:
        started = previous.step_started
    elif report.step != previous.step and open_since is not None:
        started = open_since  # resumed on the line, not restarted
    else:
        started = now
    return ObjectProgress(report.object_name, report.step, report.status, rows, expected, _clean_note(report.note),
                          step_started=started, updated=now, serial=serial)


def progress_line(entry: ObjectProgress, now: float) -> ProgressLine:
    """The line for one entry at clock value ``now``: rate = rows over the step's seconds, ETA = rows left at it."""
    end = now if entry.status == "running" else entry.updated
    seconds = max(0.0, end - entry.step_started)
    rate = entry.rows / seconds if entry.step == "extract" and entry.rows and seconds > 0 else None
    eta = None
    if rate and entry.status == "running" and entry.expected is not None and entry.rows is not None \
            and entry.expected >= entry.rows:
        eta = (entry.expected - entry.rows) / rate
    return ProgressLine(entry.object_name, entry.step, entry.status, entry.rows, entry.expected, seconds, rate, eta,
                        entry.note)


def format_duration(seconds: float) -> str:
    """``4.2s``, ``42s``, ``2m05s``, ``1h02m``: tenths only where they matter."""
    if seconds < 9.95:
        return f"{seconds:.1f}s"
    if seconds < 59.5:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_count(rows: int | None, expected: int | None) -> str:
    """``12,000/50,000``, or ``12,000`` while the expected count is unknown; ``-`` before any row."""
    if rows is None:
        return "-"
    return f"{rows:,}" if expected is None else f"{rows:,}/{expected:,}"


def format_progress_line(line: ProgressLine) -> str:
    """Plain text: ``Account extract 12,000/50,000 rows 8,100/s eta 5s``, ``Lead extract done 5,000 rows 4,100/s
    1.2s``, ``Case qa failed 5,000 rows 0.8s: <note>``; the step's seconds whenever there is no ETA."""
    parts = [line.object_name, line.step]
    if line.status != "running":
        parts.append(line.status)
    if line.rows is not None:
        parts.append(f"{format_count(line.rows, line.expected)} rows")
    if line.rate is not None:
        parts.append(f"{line.rate:,.0f}/s")
    parts.append(f"eta {format_duration(line.eta_seconds)}" if line.eta_seconds is not None
                 else format_duration(line.seconds))
    text = " ".join(parts)
    return f"{text}: {line.note}" if line.note else text


_STATUS_MARKS: dict[Status, Text] = {
    "running": Text("…", style="cyan"),
    "done": Text("✓ done", style="green"),
    "failed": Text("✗ failed", style="bold red"),
}


_RIGHT_ALIGNED = frozenset({"rows", "rate", "eta", "time"})
BAR_WIDTH = 12


def build_progress_table(lines: Sequence[ProgressLine]) -> Table:
    """The live display's table, one row per object. Only the note column may shrink (it is the one left wrapable,
    and rich narrows those first); its cells stay one line, cut with an ellipsis. Values go in as ``Text``, so a
    note is never read as markup."""
    table = Table(box=None, pad_edge=False, collapse_padding=True, header_style="bold",
                  caption=None if lines else "waiting for the first object ...")
    for name in ("object", "step", "", "rows", "", "rate", "eta", "time"):
        table.add_column(name, justify="right" if name in _RIGHT_ALIGNED else "left", no_wrap=True)
    table.add_column("note")
    for line in lines:
        bar: RenderableType = ""
        if line.expected and line.rows is not None and line.status == "running":
            bar = ProgressBar(total=line.expected, completed=min(line.rows, line.expected), width=BAR_WIDTH)
        table.add_row(
            Text(line.object_name), Text(line.step), _STATUS_MARKS[line.status],
            Text(format_count(line.rows, line.expected)), bar,
            Text(f"{line.rate:,.0f}/s" if line.rate is not None else ""),
            Text(format_duration(line.eta_seconds) if line.eta_seconds is not None else ""),
            Text(format_duration(line.seconds)),
            Text(line.note or "", style="red" if line.status == "failed" else "", no_wrap=True, overflow="ellipsis"),
        )
    return table


# ----------------------------------------------------------------------------------------------- the board


class ProgressBoard:
    """The latest report per object, shared by every thread of the process; reports are dropped while detached."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.now = clock
        self._lock = threading.Lock()
        self._entries: dict[str, ObjectProgress] = {}  # first report first: the display keeps objects in start order
        self._finished: list[ObjectProgress] = []  # every step that ended, in order: the next step may replace it
        self._open_steps: dict[tuple[str, Step], float] = {}  # (object, step) still running -> when it began
        self._serial = 0
        # read without the lock by report_progress: a report racing an attach/detach is dropped, nothing is torn
        self.attached = False

    def report(self, report: ProgressReport) -> None:
        with self._lock:
            if not self.attached:
                return
            self._serial += 1
            step = (report.object_name, report.step)
            entry = merge_report(self._entries.get(report.object_name), report, now=self.now(), serial=self._serial,
                                 open_since=self._open_steps.get(step))
            self._entries[report.object_name] = entry
            if entry.status == "running":
                self._open_steps[step] = entry.step_started
            else:
                self._open_steps.pop(step, None)
                self._finished.append(entry)

    def snapshot(self) -> tuple[ObjectProgress, ...]:
        with self._lock:
            return tuple(self._entries.values())

    def finished_since(self, serial: int) -> tuple[ObjectProgress, ...]:
        """The steps that ended after report number ``serial``, oldest first (also those a later step replaced)."""
        with self._lock:
            return tuple(e for e in self._finished if e.serial > serial)

    def attach(self) -> None:
        with self._lock:
            if self.attached:
                msg = "a progress display is already attached: progress_display shows one run at a time, not nested"
                raise RuntimeError(msg)
            self._entries.clear()
            self._finished.clear()
            self._open_steps.clear()
            self._serial = 0
            self.attached = True

    def detach(self) -> None:
        with self._lock:
            self.attached = False
            self._entries.clear()
            self._finished.clear()
            self._open_steps.clear()


_BOARD = ProgressBoard()  # process-wide on purpose: Prefect task threads report to it without being handed anything


def report_progress(object_name: str, step: Step, *, rows: int | None = None, expected: int | None = None,
                    status: Status = "running", note: str | None = None) -> None:
    """Publish an object's progress to the run's display; with none attached, a no-op costing one attribute read.

    ``rows``/``expected`` left out keep their last value (see ``merge_report``); ``note`` is a short hint, e.g. the
    first line of the error beside ``status="failed"``. Never raises for a display's sake.
    """
    if _BOARD.attached:
        _BOARD.report(ProgressReport(object_name, step, status, rows, expected, note))


def progress_snapshot() -> tuple[ObjectProgress, ...]:
    """The board as it stands: empty while no display is attached."""
    return _BOARD.snapshot()


# ----------------------------------------------------------------------------------------------- displays


class _Display(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class PlainProgress:
    """``progress ...`` lines every ``interval_seconds`` for a stream nobody watches live: one per running object,
    and one per finished step, once. A final batch on stop, so a short run still says how each object ended."""

    def __init__(self, board: ProgressBoard, stream: IO[str], interval_seconds: float) -> None:
        self._board, self._stream, self._interval = board, stream, interval_seconds
        self._printed_serial = 0  # the newest finished step already written
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-lines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.write_lines()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.write_lines()

    def write_lines(self) -> None:
        now = self._board.now()
        finished = self._board.finished_since(self._printed_serial)
        due = [*finished, *(e for e in self._board.snapshot() if e.status == "running")]
        if not due:
            return
        if finished:
            self._printed_serial = finished[-1].serial
        text = "".join(f"progress {format_progress_line(progress_line(e, now))}\n" for e in due)
        try:
            self._stream.write(text)  # one write per batch: lines from this thread never interleave mid-line
            self._stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): progress is a courtesy, the run goes on
            self._stop.set()


class LiveProgress:
    """A rich Live table refreshed ``refresh_per_second`` times while the run lasts.

    Transient: it is erased on stop, so the run's own table printed next stands alone, once per run. Meanwhile
    prints and terminal log lines go above it (see ``_logs_above``), where a refresh cannot overwrite them.
    """

    def __init__(self, board: ProgressBoard, console: Console, refresh_per_second: float) -> None:
        self._board = board
        self._live = Live(console=console, refresh_per_second=refresh_per_second, transient=True,
                          get_renderable=self.render)
        self._logs = contextlib.ExitStack()

    def render(self) -> Table:
        return build_progress_table([progress_line(e, self._board.now()) for e in self._board.snapshot()])

    def start(self) -> None:
        self._logs.enter_context(_logs_above(self._live.console))
        try:
            self._live.start(refresh=True)
        except BaseException:
            self._logs.close()
            raise

    def stop(self) -> None:
        try:
            self._live.stop()
        finally:
            self._logs.close()


class _AboveLive(io.TextIOBase):
    """Stands in for a terminal stream: each complete line is printed through the live display's console, which
    puts it above the table. (Not rich's ``FileProxy``: a rich Console unwraps that and writes past the table.)"""

    def __init__(self, console: Console, terminal: IO[str]) -> None:
        self._console, self._terminal, self._pending = console, terminal, ""

    def write(self, text: str) -> int:
        lines, newline, self._pending = (self._pending + text).rpartition("\n")
        if newline:
            self._console.print(Text.from_ansi(lines), soft_wrap=True)  # keeps a log line's colours
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._console.print(Text.from_ansi(self._pending), soft_wrap=True)
            self._pending = ""

    def isatty(self) -> bool:
        return self._terminal.isatty()  # so a rich log handler keeps its colours


def _all_handlers() -> Iterator[logging.Handler]:
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for logger in loggers:
        yield from logger.handlers


@contextlib.contextmanager
def _logs_above(console: Console) -> Iterator[None]:
    """Log handlers writing to a terminal print through ``console`` meanwhile, above the live table: a line written
    past it would be overwritten by the next refresh (tqdm's ``logging_redirect_tqdm`` does the same). Prefect's
    console handler prints through its own rich Console, so that console's file is swapped too."""
    handlers: list[tuple[logging.StreamHandler, IO[str]]] = []
    consoles: list[tuple[Console, IO[str]]] = []
    for handler in _all_handlers():
        if not isinstance(handler, logging.StreamHandler) or not is_terminal(handler.stream):
            continue
        terminal = handler.stream
        above = cast(IO[str], _AboveLive(console, terminal))
        handler.setStream(above)
        handlers.append((handler, terminal))
        own_console = getattr(handler, "console", None)
        if isinstance(own_console, Console) and own_console.file is terminal:
            own_console.file = above
            consoles.append((own_console, terminal))
    try:
        yield
    finally:
        for own_console, terminal in consoles:
            own_console.file = terminal
        for handler, terminal in handlers:
            handler.setStream(terminal)


def is_terminal(stream: object) -> bool:
    """A stream a person watches: a tty that moves its cursor (not ``TERM=dumb``)."""
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed file
        return False
    return tty and os.environ.get("TERM") != "dumb"


@contextlib.contextmanager
def progress_display(stream: IO[str] | None = None, *, console: Console | None = None,
                     interval_seconds: float = 5.0, refresh_per_second: float = 4.0) -> Iterator[None]:
    """Show the board for one run: a live table when ``stream`` (default: ``sys.stdout`` at call time) is a
    terminal, else plain lines every ``interval_seconds``. ``console`` forces the live table onto that console (a
    test's fake terminal). On exit the display stops and the board is cleared for the next run."""
    if not (math.isfinite(interval_seconds) and interval_seconds > 0):
        msg = f"progress_display: interval_seconds must be a positive number of seconds, got {interval_seconds!r}"
        raise ValueError(msg)
    out = sys.stdout if stream is None else stream
    display: _Display
    if console is None and not is_terminal(out):
        display = PlainProgress(_BOARD, out, interval_seconds)
    else:
        display = LiveProgress(_BOARD, console or Console(file=out), refresh_per_second)
    _BOARD.attach()
    try:
        display.start()
        try:
            yield
        finally:
            display.stop()
    finally:
        _BOARD.detach()
