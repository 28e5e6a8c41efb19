"""A DL-PVC dataset folder: manifest, resume, a process pool of case simulations, atomic writes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

import DosimetryCore
from DLPVCLib.dataset.activity_kinds import check_kind
from DLPVCLib.dataset.case import simulate_pvc_case
from DLPVCLib.dataset.layout import (
    _SPLIT_SALT,
    ACTIVE_FRACTION,
    CASE_RECORD,
    DEFAULT_ACQUISITION,
    DEFAULT_RECONSTRUCTIONS,
    MANIFEST,
    MANIFEST_FORMAT,
    RECONSTRUCTIONS,
    SHAPE_DIAMETER_MM,
    SPLIT_FRACTIONS,
    TOTAL_ACTIVITY_RANGE_MBQ,
    WriteResult,
    case_images,
    manifest_reconstructions,
    split_reconstructions,
)
from DLPVCLib.dataset.seeds import split_of
from DosimetryCore import io, phantoms
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.core.units import ACTIVITY_UNIT
from DosimetryCore.core.validation import check_range
from DosimetryCore.imaging import simulation
from DosimetryCore.io.records import read_json
from DosimetryCore.learning import case_folder
from DosimetryCore.learning.ray_cases import RayOptions


def build_manifest(
    n: int,
    seed: int,
    size: int,
    spacing_mm: float,
    acquisition: simulation.Acquisition,
    total_activity_range_MBq: tuple[float, float] = TOTAL_ACTIVITY_RANGE_MBQ,
    split_fractions: Sequence[float] = SPLIT_FRACTIONS,
    kind: str = "random",
    reconstructions: Sequence[str] = DEFAULT_RECONSTRUCTIONS,
) -> dict[str, Any]:
    """The manifest of a dataset: parameters, and each case's id, seed and split (no timings, so hashable).

    ``kind`` (:data:`~DLPVCLib.dataset.activity_kinds.CASE_KINDS`) is recorded only when it is not ``random``,
    and ``reconstructions`` (the OSEM images each case holds; val cases also their noise-free twins, see
    :func:`~DLPVCLib.dataset.layout.split_reconstructions`) only when they are not all four, so the manifests of
    seed 003's random-shape datasets, written before there were kinds or fewer images, keep their hash.
    ``images`` and ``units`` name every image a case may hold.
    """
    fractions = case_folder.check_fractions(split_fractions)
    cases = case_folder.manifest_cases(seed, n, fractions, _SPLIT_SALT)
    held = simulation.check_reconstructions(reconstructions)
    stems = case_images({"reconstructions": held}, "val")
    return {
        "format": MANIFEST_FORMAT,
        "generator": "DLPVCLib.dataset.write_dataset",
        "deepdosimetry": DosimetryCore.__version__,
        "reference": "Leube et al., J Nucl Med 2024;65:980-987",
        "dataset_seed": int(seed),
        "n": int(n),
        "size": int(size),
        "spacing_mm": float(spacing_mm),
        "acquisition": asdict(acquisition),
        "total_activity_range_MBq": list(check_range(total_activity_range_MBq, "total_activity_range_MBq")),
        "active_fraction": list(ACTIVE_FRACTION),
        "shape_diameter_mm": list(SHAPE_DIAMETER_MM),
        "split_fractions": list(fractions),
        "images": {stem: f"{stem}.nrrd" for stem in stems},
        "units": {"truth": ACTIVITY_UNIT, "ct": "HU", "masks": "label"} | dict.fromkeys(stems[3:], ACTIVITY_UNIT),
        **({"kind": check_kind(kind)} if kind != "random" else {}),
        **({"reconstructions": list(held)} if held != RECONSTRUCTIONS else {}),
        "split_counts": case_folder.split_counts(cases),
        "cases": cases,
    }


def simulate_command(manifest: dict[str, Any]) -> str:
    """The ``simulate-pvc`` command line that writes the dataset of ``manifest``."""
    low, high = manifest["total_activity_range_MBq"]
    command = (
        f"deepdosimetry simulate-pvc --n {manifest['n']} --seed {manifest['dataset_seed']} --size {manifest['size']} "
        f"--spacing-mm {manifest['spacing_mm']:g} --views {manifest['acquisition']['views']} "
        f"--total-activity-mbq {low:g} {high:g}"
    )
    fractions = manifest.get("split_fractions", list(SPLIT_FRACTIONS))
    if list(fractions) != list(SPLIT_FRACTIONS):
        command += " --split-fractions " + " ".join(f"{value:g}" for value in fractions)
    command += f" --kind {manifest['kind']}" if "kind" in manifest else ""
    held = manifest_reconstructions(manifest)
    return command + (" --reconstructions " + " ".join(held) if held != DEFAULT_RECONSTRUCTIONS else "")


_RENAMED_KEYS = {
    "energy_kev": "energy_keV",
    "sensitivity_cps_per_mbq": "sensitivity_cps_per_MBq",
    "total_activity_range_mbq": "total_activity_range_MBq",
}
"""Keys of manifests written before unit suffixes were spelled one way -> their name now."""


def _renamed(value: Any) -> Any:
    if isinstance(value, dict):
        return {_RENAMED_KEYS.get(key, key): _renamed(item) for key, item in value.items()}
    return value


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a dataset folder; ValueError when the folder or a valid manifest is missing.

    Manifests written before the unit suffixes were spelled one way are read with today's key names.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"data: {folder} is not a folder (simulate one with `deepdosimetry simulate-pvc`)")
    path = folder / MANIFEST
    if not path.is_file():
        raise ValueError(f"data: {folder} holds no {MANIFEST}; it is not a DL-PVC dataset")
    manifest = read_json(path, "data")
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or "cases" not in manifest:
        raise ValueError(f"data: {path} is not a DL-PVC dataset manifest (format {MANIFEST_FORMAT})")
    return {
        _RENAMED_KEYS.get(key, key): value if key == "cases" else _renamed(value) for key, value in manifest.items()
    }


def manifest_sha256(folder: str | os.PathLike) -> str:
    """sha256 of a dataset's manifest file: names the exact dataset in model cards and summaries."""
    read_manifest(folder)
    return hashlib.sha256((Path(folder) / MANIFEST).read_bytes()).hexdigest()


def is_complete(case_folder_path: Path, case: dict[str, Any], manifest: dict[str, Any]) -> bool:
    """Whether the folder of ``case`` (a manifest entry: seed, split) holds every image of its split in the dataset
    of ``manifest`` and a record of the case's seed."""
    files = [f"{stem}.nrrd" for stem in case_images(manifest, case["split"])]
    return case_folder.record_matches(case_folder_path, CASE_RECORD, case["seed"], files)


def _write_pvc_case(
    folder: Path,
    case_seed: int,
    parameters: dict[str, Any],
    manifest: dict[str, Any],
    device: str | None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Simulate one case of the dataset of ``manifest`` into ``folder`` (the reconstructions of its split);
    returns its record."""
    split = split_of(case_seed, manifest["split_fractions"])
    reconstructions = split_reconstructions(manifest, split)
    case = simulate_pvc_case(case_seed, **parameters, reconstructions=reconstructions, device=device, progress=progress)
    for stem, image in case.images.items():
        io.write_image(image, folder / f"{stem}.nrrd")
    return case.provenance


def write_dataset(
    out_dir: str | os.PathLike,
    n: int,
    seed: int,
    size: int = 128,
    spacing_mm: float = 4.8,
    acquisition: simulation.Acquisition = DEFAULT_ACQUISITION,
    *,
    total_activity_range_MBq: tuple[float, float] = TOTAL_ACTIVITY_RANGE_MBQ,
    split_fractions: Sequence[float] = SPLIT_FRACTIONS,
    kind: str = "random",
    reconstructions: Sequence[str] = DEFAULT_RECONSTRUCTIONS,
    workers: int = 1,
    threads: int | None = None,
    ray: RayOptions | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> WriteResult:
    """Write (or complete) a DL-PVC dataset of ``n`` cases of :func:`simulate_pvc_case` into ``out_dir``.

    The manifest (see :func:`build_manifest`) is written first. Cases whose folder is complete
    (every image and a ``case.json`` of the right seed) are skipped, so an interrupted run is
    resumed by running it again; each case is written into ``.<id>.partial`` and renamed when
    complete, so a case folder is never half-written (stale partial folders are removed and
    incomplete cases simulated again; one folder takes one run at a time). ``n`` may grow between
    runs (case ``i`` is the same case for any ``n``); any other parameter must match the existing
    manifest.

    Args:
        out_dir: dataset folder (created).
        n: number of cases; seed: dataset seed (case seeds from :func:`case_seeds`).
        size, spacing_mm, acquisition, total_activity_range_MBq, kind, reconstructions: as in
            :func:`simulate_pvc_case`.
        split_fractions: train/val/test shares for :func:`split_of`.
        workers: processes simulating cases in parallel (spawned, so a calling script needs the
            ``if __name__ == "__main__":`` guard; each gets cpu_count / workers torch threads).
            1 runs in this process.
        threads: torch threads per case (``None``: cpu_count / workers; on Ray ``ray.threads``).
        ray: simulate every case as a Ray task (:mod:`DosimetryCore.learning.ray_cases`; one GPU per case on
            CUDA) instead of ``workers`` processes; failed cases are retried, then reported by
            :class:`~DosimetryCore.learning.ray_cases.CasesFailed`.
        device: torch device of the SPECT simulation (``None``: CUDA when available).
        progress: ``progress(fraction, message)``; may raise
            :class:`~DosimetryCore.core.progress.Cancelled` (finished cases stay).

    Returns:
        :class:`WriteResult`: the manifest, the simulated cases with their wall times (s) and the
        skipped (already complete) ones.
    """
    report = progress or no_progress
    device_name = str(resolve_device(device))
    out_dir = Path(out_dir)
    manifest = build_manifest(
        n, seed, size, spacing_mm, acquisition, total_activity_range_MBq, split_fractions, kind, reconstructions
    )
    phantoms.make_torso(size, spacing_mm, seed=0, n_lesions=0)  # refuse a field of view too small before writing
    case_folder.prepare_folder(out_dir, manifest, read_manifest)
    todo = [case for case in manifest["cases"] if not is_complete(out_dir / case["id"], case, manifest)]
    skipped = [case["id"] for case in manifest["cases"] if case not in todo]
    parameters = {
        "size": int(size),
        "spacing_mm": float(spacing_mm),
        "acquisition": acquisition,
        "total_activity_range_MBq": tuple(manifest["total_activity_range_MBq"]),
        "kind": kind,
    }
    report(0.0, f"{len(todo)} case(s) to simulate, {len(skipped)} complete")
    args = (parameters, {key: manifest[key] for key in ("split_fractions", "reconstructions") if key in manifest},
            device_name)  # fmt: skip
    times = case_folder.write_cases(
        out_dir, todo, _write_pvc_case, args, CASE_RECORD, workers, report,
        threads=threads, ray=ray and ray.for_device(device_name),
    )  # fmt: skip
    report(1.0, f"dataset complete: {len(manifest['cases'])} case(s) in {out_dir}")
    return WriteResult(manifest, times, skipped)
