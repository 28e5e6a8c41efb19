"""Dataset folders of simulated training cases, shared by every method's ``simulate-*`` command.

A dataset folder holds ``manifest.json`` (the dataset seed, every case's id, seed and split, the parameters) and
one folder per case. What is shared here:

- seeds: case ``i``'s seed is child ``i`` of ``SeedSequence(dataset seed)``, independent of the number of cases,
  so a dataset can grow and keep its first cases;
- splits: a case's split (train, val or test) follows from a hash of its seed and a per-method salt, so it never
  changes when the set grows, is simulated in another order or resumed;
- resume: a manifest of another dataset is refused; a case folder is written as ``.<id>.partial`` and renamed
  when complete, so an interrupted run is resumed by running it again;
- parallel cases: a pool of spawned processes, each limited to its share of the CPU threads, or Ray tasks on a
  local Ray instance or a cluster (:mod:`DosimetryCore.learning.ray_cases`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.validation import check_seed
from DosimetryCore.io.outputs import atomic_path

if TYPE_CHECKING:
    from DosimetryCore.learning.ray_cases import RayOptions

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"

CaseWriter = Callable[..., dict[str, Any]]
"""``writer(folder, case_seed, *args, progress=...)`` simulates one case into ``folder`` (which exists and is
empty) and returns its JSON record (it must hold ``"seed"``); a top-level function, so spawned processes can
import it."""


def case_id(index: int) -> str:
    """The folder name of case ``index``."""
    return f"case_{index:05d}"


def case_seeds(seed: int, n: int) -> list[int]:
    """The seeds of cases 0..n-1 of a dataset seeded with ``seed`` (case i's seed does not depend on ``n``)."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(check_seed(seed)).spawn(n)]


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """``fractions`` as three train/val/test shares >= 0 summing to 1; ValueError otherwise."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise ValueError(f"split_fractions: expected 3 shares >= 0 (train, val, test) summing to 1, got {values}")
    return values


def split_of(case_seed: int, fractions: Sequence[float], salt: str) -> str:
    """The split of a case, a function of its seed alone.

    A number u in [0, 1) is taken from the sha256 of ``"<salt> <seed>"``; the case is ``train`` when
    u < fractions[0], ``val`` when u < fractions[0] + fractions[1], else ``test``.
    """
    train, val, _ = check_fractions(fractions)
    digest = hashlib.sha256(f"{salt} {check_seed(case_seed, 'case seed')}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return "train" if u < train else "val" if u < train + val else "test"


def manifest_cases(seed: int, n: int, fractions: Sequence[float], salt: str) -> list[dict[str, Any]]:
    """Each case's ``id``, ``seed`` and ``split`` for a dataset of ``n`` cases seeded with ``seed``."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n: expected a number of cases >= 1, got {n!r}")
    return [
        {"id": case_id(i), "seed": s, "split": split_of(s, fractions, salt)} for i, s in enumerate(case_seeds(seed, n))
    ]


def split_counts(cases: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Number of cases in each split."""
    return {name: sum(case["split"] == name for case in cases) for name in SPLITS}


def record_matches(case_folder: Path, record_name: str, case_seed: int, files: Sequence[str]) -> bool:
    """Whether ``case_folder`` holds every one of ``files`` and a record ``record_name`` of seed ``case_seed``."""
    record = case_folder / record_name
    if not record.is_file() or not all((case_folder / name).is_file() for name in files):
        return False
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("seed") == case_seed
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _comparable(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what may change between runs of one dataset (its size and case list)."""
    return {key: value for key, value in manifest.items() if key not in ("n", "cases", "split_counts")}


def prepare_folder(out_dir: Path, manifest: dict[str, Any], read_manifest: Callable[[Path], dict[str, Any]]) -> None:
    """Create ``out_dir``, refuse one holding another dataset (``read_manifest`` reads the old one), write the
    manifest atomically and remove partial case folders left by an interrupted run."""
    path = out_dir / MANIFEST
    if path.exists():
        old, new = _comparable(read_manifest(out_dir)), _comparable(manifest)
        differing = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
        if differing:
            raise ValueError(f"out: {out_dir} holds another dataset ({', '.join(differing)} differ); use a new folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for stale in out_dir.glob(".case_*.partial"):
        shutil.rmtree(stale)


def write_case(
    out_dir: Path,
    name: str,
    case_seed: int,
    writer: CaseWriter,
    args: tuple,
    record_name: str,
    progress: ProgressCallback | None = None,
) -> float:
    """Run ``writer`` into ``.<name>.partial``, add the id and wall time to its record, write the record as
    ``record_name`` and rename the folder to ``name``; returns the wall time (s)."""
    started = time.perf_counter()
    final, partial = out_dir / name, out_dir / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    record = writer(partial, case_seed, *args, progress=progress)
    wall_time = time.perf_counter() - started
    record = {**record, "id": name, "wall_time_s": wall_time}
    (partial / record_name).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(partial, final)
    return wall_time


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def write_cases(
    out_dir: Path,
    todo: Sequence[dict[str, Any]],
    writer: CaseWriter,
    args: tuple,
    record_name: str,
    workers: int = 1,
    progress: ProgressCallback | None = None,
    *,
    threads: int | None = None,
    ray: RayOptions | None = None,
) -> dict[str, float]:
    """Write the ``todo`` cases (dicts with ``id`` and ``seed``) with :func:`write_case`, in this process, in
    ``workers`` spawned processes (a calling script needs the ``if __name__ == "__main__":`` guard) or, with
    ``ray``, as Ray tasks (:func:`DosimetryCore.learning.ray_cases.write_cases_on_ray`); returns each case's wall
    time (s). ``threads``: torch threads per case (``None``: cpu_count / workers in a pool, torch's default in
    this process; Ray: ``ray.threads``); a case is bit-identical for any backend at the same thread count.
    ``progress`` may raise :class:`~DosimetryCore.core.progress.Cancelled`: finished cases stay. When the driver
    stops (an error, Ctrl-C, SIGTERM), the worker processes are ended with it. Call from the main thread (signal
    handler).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads: expected an integer >= 1, got {threads!r}")
    if ray is not None:
        if workers != 1:
            raise ValueError(f"workers: {workers} is for the local pool; on Ray every case is a task of its own")
        from DosimetryCore.learning.ray_cases import write_cases_on_ray

        options = ray if threads is None else replace(ray, threads=threads)
        return write_cases_on_ray(out_dir, todo, writer, args, record_name, options, progress)
    report = progress or no_progress
    times: dict[str, float] = {}
    if workers == 1 or len(todo) <= 1:
        previous_threads = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            for index, case in enumerate(todo):
                case_progress = sub_progress(report, index / len(todo), (index + 1) / len(todo))
                times[case["id"]] = write_case(
                    out_dir, case["id"], case["seed"], writer, args, record_name, case_progress
                )
        finally:
            torch.set_num_threads(previous_threads)
        return times
    workers = min(workers, len(todo))
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    context = get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads, initargs=(threads,))
    previous = signal.signal(signal.SIGTERM, raise_on_signal)  # so that `kill` of the driver stops the workers too
    try:
        pending = {
            pool.submit(write_case, out_dir, case["id"], case["seed"], writer, args, record_name): case["id"]
            for case in todo
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                name = pending.pop(future)
                times[name] = future.result()
                report(len(times) / len(todo), f"{name} done ({len(times)}/{len(todo)})")
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    pool.shutdown()
    return times


def raise_on_signal(signum: int, frame: object) -> None:
    """A SIGTERM handler: leave by ``SystemExit``, so that ``finally`` blocks stop the workers."""
    raise SystemExit(f"stopped by signal {signum}")


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued cases and end the running ones: a worker left running would go on writing into the
    folder after its driver is gone (its partial folder is removed by the next run)."""
    processes = list(getattr(pool, "_processes", {}).values())  # the executor has no public handle on them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
