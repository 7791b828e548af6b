"""Progress board and displays: the line arithmetic, a fake terminal, a pipe, the detached no-op, many threads."""

from __future__ import annotations

import io
import logging
import threading
import time

import pytest
from prefect.logging.handlers import PrefectConsoleHandler
from rich.console import Console
from rich.text import Text

from utils import progress
from utils.progress import (
    ObjectProgress,
    ProgressBoard,
    ProgressReport,
    format_duration,
    format_progress_line,
    merge_report,
    progress_display,
    progress_line,
    progress_snapshot,
    report_progress,
)


def _entry(step="extract", status="running", rows=None, expected=None, note=None, started=100.0, updated=100.0):
    return ObjectProgress("Account", step, status, rows, expected, note, step_started=started, updated=updated,
                          serial=1)


def _text(entry: ObjectProgress, now: float) -> str:
    return format_progress_line(progress_line(entry, now))


class _Pipe(io.StringIO):
    """What a Prefect worker, cron or `| cat` gives: a stream that is not a terminal."""

    def isatty(self) -> bool:
        return False


# ----------------------------------------------------------------------------------------------- the line


def test_a_running_extract_shows_rows_against_expected_rate_and_eta():
    line = progress_line(_entry(rows=12_000, expected=50_000), now=102.0)  # 12,000 rows in 2 s
    assert line.rate == pytest.approx(6_000)
    assert line.eta_seconds == pytest.approx(38_000 / 6_000)
    assert format_progress_line(line) == "Account extract 12,000/50,000 rows 6,000/s eta 6.3s"


def test_an_unknown_expected_count_gives_rows_and_rate_but_no_eta():
    assert _text(_entry(rows=12_000), now=104.0) == "Account extract 12,000 rows 3,000/s 4.0s"


def test_an_extract_waiting_for_its_first_page_shows_its_seconds():
    assert _text(_entry(rows=0), now=103.0) == "Account extract 0 rows 3.0s"


def test_a_finished_step_shows_its_mark_rows_and_duration_frozen_at_the_last_report():
    done = _entry(status="done", rows=50_000, expected=50_000, updated=110.0)
    assert _text(done, now=500.0) == "Account extract done 50,000/50,000 rows 5,000/s 10s"


def test_a_failed_step_carries_its_note():
    failed = _entry(step="replica", status="failed", rows=5_000, note="merge failed", updated=100.8)
    assert _text(failed, now=200.0) == "Account replica failed 5,000 rows 0.8s: merge failed"


def test_rate_and_eta_belong_to_extracts_only():
    line = progress_line(_entry(step="phase1", rows=5_000, expected=5_000), now=101.0)
    assert line.rate is None and line.eta_seconds is None
    assert format_progress_line(line) == "Account phase1 5,000/5,000 rows 1.0s"


def test_more_rows_than_expected_gives_no_eta():
    assert progress_line(_entry(rows=60, expected=50), now=101.0).eta_seconds is None


@pytest.mark.parametrize(("seconds", "text"), [(0.04, "0.0s"), (4.25, "4.2s"), (42.4, "42s"), (125, "2m05s"),
                                               (3720, "1h02m")])
def test_durations_read_at_a_glance(seconds, text):
    assert format_duration(seconds) == text


# ----------------------------------------------------------------------------------------------- merging reports


def test_a_new_step_restarts_the_clock_and_keeps_the_rows():
    extracted = _entry(rows=5_000, expected=5_000, started=100.0, updated=102.0)
    phase1 = merge_report(extracted, ProgressReport("Account", "phase1"), now=103.0, serial=2)
    assert (phase1.step, phase1.rows, phase1.expected, phase1.step_started) == ("phase1", 5_000, 5_000, 103.0)


def test_rows_going_down_restart_the_step_and_drop_an_expected_count_not_given_with_them():
    running = _entry(rows=4_000, expected=5_000, started=100.0)
    restarted = merge_report(running, ProgressReport("Account", "extract", rows=0), now=107.0, serial=2)
    assert (restarted.rows, restarted.expected, restarted.step_started) == (0, None, 107.0)


def test_counts_within_a_step_keep_the_clock_and_the_expected_count():
    running = _entry(rows=2_000, expected=5_000, started=100.0)
    later = merge_report(running, ProgressReport("Account", "extract", rows=4_000), now=104.0, serial=2)
    assert (later.rows, later.expected, later.step_started, later.updated) == (4_000, 5_000, 100.0, 104.0)


def test_a_retry_after_a_failure_is_a_new_attempt():
    failed = _entry(status="failed", rows=300, started=100.0, updated=101.0)
    retry = merge_report(failed, ProgressReport("Account", "extract", rows=300), now=106.0, serial=2)
    assert (retry.status, retry.step_started) == ("running", 106.0)


def test_steps_of_one_object_running_at_once_each_keep_their_own_clock():
    """Phase 1 and QA of an object run side by side and take turns on its line: QA's time is QA's own."""
    clock = iter([0.0, 1.0, 2.0, 5.0])
    board = ProgressBoard(clock=lambda: next(clock))
    board.attach()
    board.report(ProgressReport("Lead", "qa"))                       # t=0
    board.report(ProgressReport("Lead", "phase1"))                   # t=1
    board.report(ProgressReport("Lead", "phase1", status="done"))    # t=2
    board.report(ProgressReport("Lead", "qa", status="done"))        # t=5
    phase1, qa = board.finished_since(0)
    assert (phase1.step, progress_line(phase1, 9.0).seconds) == ("phase1", 1.0)
    assert (qa.step, progress_line(qa, 9.0).seconds) == ("qa", 5.0)


def test_a_note_keeps_its_first_line_without_escape_codes():
    report = ProgressReport("Account", "qa", status="failed", note="\x1b[31mboom\x1b[0m\nTraceback ...")
    note = merge_report(None, report, now=1.0, serial=1).note
    assert note == " [31mboom [0m"


# ----------------------------------------------------------------------------------------------- displays


def test_the_live_table_in_a_fake_terminal_shows_each_object_with_its_counts():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with progress_display(console=console):
        report_progress("Account", "extract", rows=12_000, expected=50_000)
        report_progress("Lead", "extract", rows=5_000, expected=5_000, status="done")
        report_progress("Case", "qa", status="failed", note="uniqueness_id failed")
        time.sleep(0.4)  # at least one refresh at 4/s
    out = screen.getvalue()
    seen = Text.from_ansi(out).plain  # what the terminal showed, without the styles
    for text in ("Account", "12,000/50,000", "Lead", "5,000/5,000", "✓ done", "Case", "✗ failed",
                 "uniqueness_id failed"):
        assert text in seen
    assert "\x1b[" in out  # a terminal: the table is drawn and erased with cursor codes
    assert progress_snapshot() == ()  # detached: the board is clean for the next run


class _Tty(io.StringIO):
    """A terminal the live table shares with log handlers (Prefect's console handler writes to stderr)."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("handler_class", [logging.StreamHandler, PrefectConsoleHandler])
def test_log_lines_meanwhile_go_above_the_live_table_not_through_it(handler_class):
    screen, terminal = io.StringIO(), _Tty()
    console = Console(file=screen, force_terminal=True, width=100)
    logger, handler = logging.getLogger("test_progress.logs_above"), handler_class(terminal)
    logger.addHandler(handler)
    try:
        with progress_display(console=console):
            report_progress("Account", "extract", rows=1)
            logger.warning("fields_dropped object=Account")
        logger.warning("after the run")
    finally:
        logger.removeHandler(handler)
    assert "fields_dropped object=Account" in Text.from_ansi(screen.getvalue()).plain
    assert "fields_dropped" not in terminal.getvalue() and "after the run" in terminal.getvalue()


def test_plain_lines_into_a_pipe_come_every_interval_and_never_carry_escape_codes():
    pipe = _Pipe()
    with progress_display(pipe, interval_seconds=0.1):
        report_progress("Account", "extract", rows=0)
        for rows in range(1_000, 5_001, 1_000):
            time.sleep(0.06)
            report_progress("Account", "extract", rows=rows, expected=5_000)
        report_progress("Account", "extract", rows=5_000, status="done")
        report_progress("Lead", "qa", status="failed", note="\x1b[31mcompleteness_amount\x1b[0m")
    lines = pipe.getvalue().splitlines()
    assert "\x1b" not in pipe.getvalue()
    running = [line for line in lines if line.startswith("progress Account extract ") and "done" not in line]
    assert len(running) >= 2, lines  # ~0.3 s of running at 0.1 s intervals
    assert lines.count(next(ln for ln in lines if "Account extract done 5,000/5,000 rows" in ln)) == 1
    assert any(line.startswith("progress Lead qa failed") and "completeness_amount" in line for line in lines)


def test_a_finished_object_is_written_once_and_a_running_one_every_interval():
    pipe = _Pipe()
    with progress_display(pipe, interval_seconds=0.05):
        report_progress("Lead", "extract", rows=10, status="done")
        report_progress("Case", "extract", rows=10)
        time.sleep(0.3)
    lines = pipe.getvalue().splitlines()
    assert sum("Lead" in line for line in lines) == 1
    assert sum("Case" in line for line in lines) >= 3


def test_a_step_that_ended_between_two_ticks_is_still_written_once():
    pipe = _Pipe()
    with progress_display(pipe, interval_seconds=60):  # no tick during the run: only the final batch
        report_progress("Lead", "extract", rows=5_000, expected=5_000, status="done")
        report_progress("Lead", "replica", rows=4_948, note="merging the delta")  # replaces it on the board
        report_progress("Lead", "replica", rows=4_948, status="done")
        report_progress("Lead", "phase1")
    lines = pipe.getvalue().splitlines()
    assert [line.split(" rows")[0] for line in lines] == [
        "progress Lead extract done 5,000/5,000", "progress Lead replica done 4,948", "progress Lead phase1 4,948"]


def test_a_display_defaults_to_plain_lines_when_the_stream_is_not_a_terminal():
    pipe = _Pipe()
    with progress_display(pipe, interval_seconds=60):
        report_progress("Account", "extract", rows=1)
    assert pipe.getvalue().startswith("progress Account extract 1 rows ")  # the final batch, no table


def test_one_display_at_a_time():
    with progress_display(_Pipe()), pytest.raises(RuntimeError, match="one run at a time"), \
            progress_display(_Pipe()):
        pass


def test_a_bad_interval_is_refused():
    with pytest.raises(ValueError, match="interval_seconds"), progress_display(_Pipe(), interval_seconds=0):
        pass


# ----------------------------------------------------------------------------------------------- the board


def test_reports_without_a_display_do_nothing_not_even_build_a_report(monkeypatch):
    def boom(report):
        raise AssertionError(f"a report reached the board with no display attached: {report}")

    monkeypatch.setattr(progress._BOARD, "report", boom)  # the no-op is one attribute read, nothing more
    report_progress("Account", "extract", rows=1, expected=2)
    assert progress_snapshot() == ()


def test_many_threads_reporting_at_once_lose_nothing():
    threads, reports = 8, 2_000

    def extract(name: str) -> None:
        for rows in range(1, reports + 1):
            report_progress(name, "extract", rows=rows, expected=reports)
            report_progress("Shared", "extract", rows=1)

    with progress_display(_Pipe(), interval_seconds=0.01):
        workers = [threading.Thread(target=extract, args=(f"Object{i}",)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        board = {entry.object_name: entry for entry in progress_snapshot()}
    assert {name: entry.rows for name, entry in board.items() if name != "Shared"} == {
        f"Object{i}": reports for i in range(threads)}
    assert max(entry.serial for entry in board.values()) == threads * reports * 2
