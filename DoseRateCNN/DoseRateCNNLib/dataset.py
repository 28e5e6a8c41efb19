"""A DoseRateCNN dataset folder: cases of :func:`DoseRateCNNLib.data.simulate_dose_case`, a manifest, resume,
cases simulated in parallel (the machinery of :mod:`DosimetryCore.learning.case_folder`).

Folder::

    manifest.json       dataset seed, settings, every case's id, seed and split
    case_00000/         one folder per case (written as .case_00000.partial, then renamed)
        <array>.npy     float32 arrays (z, y, x) of the dose grid, uncompressed so training memory-maps them:
                        activity, hu, density, labels, mc, spect_<i>, vdk_<i> (i: count level)
        case.json       the case's record (seeds, sampled values, spacing, label names, Monte Carlo
                        uncertainty of each organ's mean dose rate, wall time)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

import DosimetryCore
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.io.records import read_json
from DosimetryCore.learning import case_folder
from DosimetryCore.learning.ray_cases import RayOptions

from .data import DoseCaseSettings, simulate_dose_case

MANIFEST_FORMAT = 1
CASE_RECORD = "case.json"
SPLIT_FRACTIONS = (0.8, 0.2, 0.0)
"""Default train/val/test shares; a held-out set is best simulated as its own dataset with ``(0, 0, 1)``."""
SPLIT_SALT = "DoseRateCNN split"
BASE_ARRAYS = ("activity", "hu", "density", "labels", "mc")


def array_names(settings: DoseCaseSettings) -> list[str]:
    """The arrays of a case made with ``settings``."""
    kinds = ("spect", "vdk", "mcspect") if settings.mc_on_spect else ("spect", "vdk")
    return [*BASE_ARRAYS, *(f"{kind}_{i}" for i in range(len(settings.count_levels)) for kind in kinds)]


def build_manifest(
    n: int, seed: int, settings: DoseCaseSettings, split_fractions: Sequence[float] = SPLIT_FRACTIONS
) -> dict[str, Any]:
    """The manifest of a dataset of ``n`` cases: settings, and each case's id, seed and split."""
    fractions = case_folder.check_fractions(split_fractions)
    cases = case_folder.manifest_cases(seed, n, fractions, SPLIT_SALT)
    return {
        "format": MANIFEST_FORMAT,
        "generator": "DoseRateCNNLib.dataset.write_dose_dataset",
        "deepdosimetry": DosimetryCore.__version__,
        "reference": "Li, Fessler, Mikell, Wilderman, Dewaraja, Med Phys 2022;49(2):1216-1230",
        "dataset_seed": int(seed),
        "n": int(n),
        "settings": _json_settings(settings),
        "arrays": array_names(settings),
        "units": {"activity": "Bq/mL", "hu": "HU", "density": "g/cm3", "labels": "label", "mc": "Gy/h"}
        | {f"spect_{i}": "Bq/mL" for i in range(len(settings.count_levels))}
        | {f"{kind}_{i}": "Gy/h" for i in range(len(settings.count_levels)) for kind in ("vdk", "mcspect")},
        "split_fractions": list(fractions),
        "split_counts": case_folder.split_counts(cases),
        "cases": cases,
    }


def _json_settings(settings: DoseCaseSettings) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(settings).items()}


def settings_of(manifest: dict[str, Any]) -> DoseCaseSettings:
    """The :class:`DoseCaseSettings` a manifest records."""
    values = manifest["settings"]
    return DoseCaseSettings(
        **{
            f.name: tuple(values[f.name]) if isinstance(values[f.name], list) else values[f.name]
            for f in fields(DoseCaseSettings)
        }
    )


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a dataset folder; ValueError when the folder or a valid manifest is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"data: {folder} is not a folder (simulate one with `deepdosimetry simulate-dose`)")
    path = folder / case_folder.MANIFEST
    if not path.is_file():
        raise ValueError(f"data: {folder} holds no {case_folder.MANIFEST}; it is not a DoseRateCNN dataset")
    manifest = read_json(path, "data")
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or "settings" not in manifest:
        raise ValueError(f"data: {path} is not a DoseRateCNN dataset manifest (format {MANIFEST_FORMAT})")
    return manifest


def manifest_sha256(folder: str | os.PathLike) -> str:
    """sha256 of a dataset's manifest file (names the exact dataset in model cards and tables)."""
    read_manifest(folder)
    return hashlib.sha256((Path(folder) / case_folder.MANIFEST).read_bytes()).hexdigest()


def is_complete(case_path: Path, case_seed: int, names: Sequence[str]) -> bool:
    """Whether a case folder holds every array and a record of the expected seed."""
    return case_folder.record_matches(case_path, CASE_RECORD, case_seed, [f"{name}.npy" for name in names])


def _write_dose_case(
    folder: Path,
    case_seed: int,
    settings: DoseCaseSettings,
    device: str | None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Simulate one case into ``folder`` (one ``.npy`` per array); returns its record."""
    arrays, record = simulate_dose_case(case_seed, settings, device=device, progress=progress)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return record


def write_dose_dataset(
    out_dir: str | os.PathLike,
    n: int,
    seed: int,
    settings: DoseCaseSettings | None = None,
    *,
    split_fractions: Sequence[float] = SPLIT_FRACTIONS,
    workers: int = 1,
    threads: int | None = None,
    ray: RayOptions | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Write (or complete) a dataset of ``n`` cases into ``out_dir``; returns the manifest.

    Complete cases are skipped, so an interrupted run is resumed by running it again; ``n`` may grow between
    runs (case ``i`` is the same for any ``n``); other settings must match the folder's manifest.
    ``workers`` processes simulate cases in parallel (spawned: a calling script needs the
    ``if __name__ == "__main__":`` guard), each with ``threads`` torch threads (``None``: cpu_count / workers);
    with ``ray`` every case is a Ray task instead (:mod:`DosimetryCore.learning.ray_cases`; one GPU per case on
    CUDA; failed cases are retried, then reported by :class:`~DosimetryCore.learning.ray_cases.CasesFailed`).
    """
    report = progress or no_progress
    settings = settings or DoseCaseSettings()
    device_name = str(resolve_device(device))
    out_dir = Path(out_dir)
    manifest = build_manifest(n, seed, settings, split_fractions)
    case_folder.prepare_folder(out_dir, manifest, read_manifest)
    names = manifest["arrays"]
    todo = [case for case in manifest["cases"] if not is_complete(out_dir / case["id"], case["seed"], names)]
    report(0.0, f"{len(todo)} case(s) to simulate, {len(manifest['cases']) - len(todo)} complete")
    case_folder.write_cases(
        out_dir, todo, _write_dose_case, (settings, device_name), CASE_RECORD, workers, report,
        threads=threads, ray=ray and ray.for_device(device_name),
    )  # fmt: skip
    report(1.0, f"dataset complete: {len(manifest['cases'])} case(s) in {out_dir}")
    return manifest


def load_case(folder: str | os.PathLike, case: dict[str, Any], names: Sequence[str], mmap: bool = True) -> dict:
    """The arrays ``names`` of one case (memory-mapped by default) and its record under ``"record"``."""
    path = Path(folder) / case["id"]
    if not is_complete(path, case["seed"], names):
        raise ValueError(f"data: case {case['id']} of {folder} is incomplete; run simulate-dose again to finish it")
    arrays: dict[str, Any] = {name: np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None) for name in names}
    arrays["record"] = read_json(path / CASE_RECORD, "data")
    return arrays
