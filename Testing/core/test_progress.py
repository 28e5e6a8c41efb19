"""DosimetryCore.core.progress: callbacks, sub-ranges, the terminal bar and cancellation."""

from __future__ import annotations

import io

import pytest

from DosimetryCore.core.progress import Cancelled, no_progress, sub_progress, terminal_progress


def test_sub_progress_maps_and_clamps_into_the_parent_range():
    reports = []
    child = sub_progress(lambda f, m: reports.append((f, m)), 0.5, 0.75)
    child(0.0, "a")
    child(0.5, "b")
    child(2.0, "c")
    assert reports == [(0.5, "a"), (0.625, "b"), (0.75, "c")]
    sub_progress(None, 0.0, 1.0)(0.3, "ignored")
    no_progress(0.1, "ignored")


def test_terminal_progress_draws_a_bar_and_ends_the_line():
    stream = io.StringIO()
    bar = terminal_progress(stream, width=10, interactive=True)
    bar(0.5, "half")
    bar(1.0, "done")
    text = stream.getvalue()
    assert "[#####.....]  50.0% half" in text
    assert "[##########] 100.0% done" in text and text.endswith("\n")


def test_terminal_progress_prints_plain_lines_into_a_file_or_pipe():
    stream = io.StringIO()  # not a terminal
    report = terminal_progress(stream)
    for batch in range(1, 41):
        report(batch / 40, f"photon kernel batch {batch}/40")
    report(1.0, "kernel done")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "[" not in stream.getvalue()
    assert lines[0] == "  2.5% photon kernel batch 1/40" and lines[-1] == "100.0% kernel done"
    assert len(lines) == 12  # the first line, one every 10 %, and the new message


def test_a_callback_can_cancel():
    def cancelling(fraction, message):
        if fraction > 0.2:
            raise Cancelled("stop")

    def work(progress):
        for step in range(10):
            progress(step / 10, f"step {step}")
        return "finished"

    with pytest.raises(Cancelled):
        work(cancelling)
