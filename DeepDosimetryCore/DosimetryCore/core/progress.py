"""Progress reporting shared by every long-running function.

A progress callback has the signature ``progress(fraction, message)`` with ``fraction`` in
[0, 1]. The Slicer widgets map it to a progress bar, the command line to a terminal bar. A
callback may raise :class:`Cancelled` to stop the work; functions let it propagate and write
nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

ProgressCallback = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised from a progress callback to cancel the running computation."""


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that ignores every report."""


def sub_progress(progress: ProgressCallback | None, start: float, stop: float) -> ProgressCallback:
    """Map a sub-task's [0, 1] progress onto ``[start, stop]`` of the parent's ``progress``."""
    parent = progress or no_progress

    def report(fraction: float, message: str) -> None:
        parent(start + (stop - start) * min(max(fraction, 0.0), 1.0), message)

    return report


def terminal_progress(stream: TextIO = sys.stderr, width: int = 30) -> ProgressCallback:
    """A progress callback drawing a one-line text bar on ``stream`` (the command line's bar)."""

    def report(fraction: float, message: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(round(fraction * width))
        end = "\n" if fraction >= 1.0 else ""
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:5.1f}% {message[:60]:<60}{end}")
        stream.flush()

    return report
