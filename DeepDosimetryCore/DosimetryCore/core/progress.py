"""Progress reporting shared by every long-running function.

A progress callback has the signature ``progress(fraction, message)`` with ``fraction`` in
[0, 1]. The Slicer widgets map it to a progress bar, the command line to a terminal bar. A
callback may raise :class:`Cancelled` to stop the work; functions let it propagate and write
nothing.
"""

from __future__ import annotations

import re
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


def terminal_progress(
    stream: TextIO = sys.stderr, width: int = 30, interactive: bool | None = None
) -> ProgressCallback:
    """A progress callback for the command line: a one-line text bar on a terminal; plain lines when ``stream``
    is a file or a pipe (``interactive`` None: ask the stream), one for every new kind of message (digits aside)
    and one every 10 %, so that logs stay readable."""
    if interactive is None:
        interactive = bool(getattr(stream, "isatty", lambda: False)())
    last = {"stem": None, "decile": -1}

    def report(fraction: float, message: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if not interactive:
            stem, decile = re.sub(r"[0-9.]+", "#", message), int(10 * fraction)
            if stem != last["stem"] or decile > last["decile"]:
                stream.write(f"{100 * fraction:5.1f}% {message}\n")
                stream.flush()
            last["stem"], last["decile"] = stem, decile
            return
        filled = int(round(fraction * width))
        end = "\n" if fraction >= 1.0 else ""
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:5.1f}% {message[:60]:<60}{end}")
        stream.flush()

    return report
