"""Dataset cases simulated as Ray tasks: on a local Ray instance or an existing cluster (``ray start``).

One task per case, each asking for ``threads`` CPUs (and one GPU when the simulation runs on CUDA) and running
torch with exactly ``threads`` threads, so that a case is bit-identical to the same case simulated by the local
pool (:func:`DosimetryCore.learning.case_folder.write_cases`) with the same thread count. Each task writes its
case with :func:`~DosimetryCore.learning.case_folder.write_case` (``.<id>.partial``, renamed when complete) into
the output folder, which on a cluster must be shared storage mounted at the same path on every node. The driver
(this process) writes the manifest before and reports progress as cases finish. A case that raises is retried
``retries`` times; one still failing is reported in :class:`CasesFailed` after every other case is written,
never dropped silently. Ray is imported only here and only when called: ``pip install .[cluster]``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.learning.case_folder import CaseWriter, raise_on_signal, write_case

INSTALL_HINT = "pip install .[cluster]"


class CasesFailed(RuntimeError):
    """Cases that failed on every attempt; ``failures`` maps each case id to its last error in words."""

    def __init__(self, failures: dict[str, str], attempts: int) -> None:
        self.failures = dict(sorted(failures.items()))
        self.attempts = attempts
        lines = [f"  {name}: {message}" for name, message in self.failures.items()]
        super().__init__(
            f"{len(self.failures)} case(s) failed {attempts} time(s) each; the other cases are written, and running "
            "the command again simulates only the missing ones:\n" + "\n".join(lines)
        )


@dataclass(frozen=True)
class RayOptions:
    """Where and how cases run on Ray.

    Attributes:
        address: an existing cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``); ``None`` starts a
            local Ray instance on this machine (or uses the one this process already joined).
        num_cpus: CPUs of a local instance (``None``: every core); ignored with an ``address``.
        threads: torch threads of each case, and the CPUs its task asks for (>= 1).
        gpus_per_case: GPUs each task asks for (0 on CPU; :meth:`for_device` sets 1 for CUDA).
        retries: attempts after the first when a case raises or its worker dies (>= 0).
    """

    address: str | None = None
    num_cpus: int | None = None
    threads: int = 1
    gpus_per_case: float = 0.0
    retries: int = 2

    def __post_init__(self) -> None:
        for name in ("threads", "retries"):
            value = getattr(self, name)
            minimum = 1 if name == "threads" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"ray {name}: expected an integer >= {minimum}, got {value!r}")
        if self.num_cpus is not None and (not isinstance(self.num_cpus, int) or self.num_cpus < 1):
            raise ValueError(f"ray num_cpus: expected an integer >= 1, got {self.num_cpus!r}")
        if self.gpus_per_case < 0:
            raise ValueError(f"ray gpus_per_case: expected >= 0, got {self.gpus_per_case!r}")

    def for_device(self, device: str) -> RayOptions:
        """These options with one GPU per case when ``device`` is a CUDA device and no GPU share was given."""
        if str(device).startswith("cuda") and self.gpus_per_case == 0:
            return replace(self, gpus_per_case=1.0)
        return self


def import_ray() -> Any:
    """The ``ray`` package, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"--ray needs Ray, an optional dependency: {INSTALL_HINT}") from error
    return ray


def _simulate(
    out_dir: Path, name: str, case_seed: int, writer: CaseWriter, args: tuple, record_name: str, threads: int
) -> tuple[float, str]:
    """One case in a Ray worker: torch limited to ``threads`` threads; returns the wall time (s) and the host."""
    torch.set_num_threads(threads)
    return write_case(out_dir, name, case_seed, writer, args, record_name), os.uname().nodename


def _connect(ray: Any, options: RayOptions) -> bool:
    """Join the cluster of ``options`` (or keep the instance this process joined); whether we started it."""
    if ray.is_initialized():
        return False
    if options.address:
        ray.init(address=options.address)
    else:
        ray.init(num_cpus=options.num_cpus or os.cpu_count(), include_dashboard=False)
    return True


def write_cases_on_ray(
    out_dir: Path,
    todo: Sequence[dict[str, Any]],
    writer: CaseWriter,
    args: tuple,
    record_name: str,
    options: RayOptions,
    progress: ProgressCallback | None = None,
) -> dict[str, float]:
    """Write the ``todo`` cases (dicts with ``id`` and ``seed``) as Ray tasks; returns each case's wall time (s).

    ``writer`` and ``args`` are as :func:`~DosimetryCore.learning.case_folder.write_cases` (a top-level function
    the workers can import). ``progress`` is called on this process after every finished case; it may raise
    :class:`~DosimetryCore.core.progress.Cancelled` (finished cases stay; the others are cancelled). Call from
    the main thread (signal handler).

    Raises:
        ImportError: Ray is not installed.
        CasesFailed: some cases failed ``1 + options.retries`` times (the others are written).
    """
    report = progress or no_progress
    if not todo:
        return {}
    ray = import_ray()
    started_here = _connect(ray, options)
    out_dir = Path(out_dir).resolve()  # the workers' path on the shared storage
    task = ray.remote(_simulate).options(
        num_cpus=options.threads,
        num_gpus=options.gpus_per_case,
        max_retries=options.retries,
        retry_exceptions=True,
    )
    previous = signal.signal(signal.SIGTERM, raise_on_signal)
    pending: dict[Any, str] = {}
    times: dict[str, float] = {}
    failures: dict[str, str] = {}
    started = time.perf_counter()
    try:
        for case in todo:
            reference = task.remote(out_dir, case["id"], case["seed"], writer, args, record_name, options.threads)
            pending[reference] = case["id"]
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(done[0])
            try:
                times[name], host = ray.get(done[0])
                outcome = f"{name} done on {host} in {times[name]:.1f} s"
            except Exception as error:  # the task's own exception (wrapped by Ray) or a lost worker
                failures[name] = _last_line(error)
                outcome = f"{name} FAILED"
            finished = len(times) + len(failures)
            rate = 60.0 * finished / (time.perf_counter() - started)
            report(finished / len(todo), f"{outcome} ({finished}/{len(todo)}, {rate:.1f} cases/min)")
    except BaseException:
        for reference in pending:
            ray.cancel(reference, force=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if started_here:
            ray.shutdown()
    if failures:
        raise CasesFailed(failures, 1 + options.retries)
    return times


def _last_line(error: BaseException) -> str:
    """The error in one line: Ray's task errors carry the worker's whole traceback, whose last line names it."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__
