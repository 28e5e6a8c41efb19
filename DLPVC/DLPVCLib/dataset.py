"""DL-PVC training data (seed 003, Leube et al., J Nucl Med 2024): random activity in body phantoms + SPECT.

Seed 003 trained on 10,000 pairs of a random, patient-like 177Lu activity distribution placed in
an XCAT body and its simulated SPECT (120 views of 30 s, MELP collimator), reconstructed four ways:
OSEM without resolution recovery (noRR: 10 iterations x 2 subsets) and with it (RR: 6 x 6), each
from noise-free and from noisy projections, at 4.8 mm voxels on a 128^3 grid.
:func:`simulate_pvc_case` makes one such case here: a synthetic torso
(:func:`DosimetryCore.phantoms.make_torso`, its CT and body outline only), a random activity
distribution in it (:func:`DosimetryCore.phantoms.random_activity`) and the four reconstructions
(:func:`DosimetryCore.imaging.simulation.simulate_spect`). :func:`write_dataset` writes many such cases as
one dataset folder, and :class:`PVCDataset` serves one split of it to
:func:`DosimetryCore.learning.training.train`.

Dataset folder::

    manifest.json           what was simulated: dataset seed, every case's seed and split, parameters
    case_00000/             one folder per case (written to a temporary folder, then renamed)
        truth.nrrd          true activity concentration (Bq/mL, float32)
        ct.nrrd             CT (HU) of the body the activity lies in
        masks.nrrd          region labelmap of the true activity (for iterative Yang PVC)
        osem_norr_noise_free.nrrd, osem_norr_noisy.nrrd, osem_rr_noise_free.nrrd, osem_rr_noisy.nrrd
                            the four reconstructions (Bq/mL, float32, on the truth's grid)
        case.json           the case's provenance (seeds, sampled totals, wall time)

All images share the grid (size^3 voxels of spacing_mm, identity direction, centred on the
rotation axis); arrays are (z, y, x). NRRD keeps the unit and provenance metadata, and every file
opens in Slicer.

Departures from seed 003: the body is this project's analytic torso (pelvis to lung apex), not
XCAT in three bed positions (no head), and scatter is neither simulated nor corrected (see
:mod:`DosimetryCore.imaging.simulation`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage
from torch.utils.data import Dataset

import DosimetryCore
from DosimetryCore import io, phantoms
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.metadata import QUANTITY_KEY, UNIT_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.provenance import read as read_provenance
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.units import ACTIVITY_UNIT
from DosimetryCore.core.validation import check_range, check_seed
from DosimetryCore.imaging import simulation

MANIFEST = "manifest.json"
CASE_RECORD = "case.json"
MANIFEST_FORMAT = 1

RECONSTRUCTIONS = ("osem_norr_noise_free", "osem_norr_noisy", "osem_rr_noise_free", "osem_rr_noisy")
"""The four SPECT reconstructions of seed 003 (noRR_nf, noRR_n, RR_nf, RR_n): the possible network inputs."""

CASE_IMAGES = ("truth", "ct", "masks", *RECONSTRUCTIONS)
"""The images of one case, by file stem (``<stem>.nrrd``)."""

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
"""Expected share of cases in train, val and test (seed 003 held out 500 of 10,000 cases, 5 %, for testing)."""

TOTAL_ACTIVITY_RANGE_MBQ = (300.0, 3000.0)
"""Activity in the field of view (MBq), drawn log-uniformly per case (see :func:`simulate_pvc_case`)."""

ACTIVE_FRACTION = (0.01, 0.1)
"""Share of the body volume that holds activity, drawn uniformly per case (see :func:`simulate_pvc_case`)."""

SHAPE_DIAMETER_MM = (9.6, 240.0)
"""Random-shape diameters (mm): seed 003's 4 to 100 voxels of 2.4 mm."""

DEFAULT_ACQUISITION = simulation.Acquisition()
"""Seed 003's protocol: 120 views x 30 s, MELP collimator, noRR OSEM 10 x 2, RR OSEM 6 x 6."""

_SPLIT_SALT = "DLPVC split"


@dataclass
class PVCCase:
    """One simulated case: ``images`` keyed by :data:`CASE_IMAGES` and its JSON ``provenance``."""

    images: dict[str, sitk.Image]
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class WriteResult:
    """What :func:`write_dataset` did: the manifest, the cases it simulated (with wall time in s) and skipped."""

    manifest: dict[str, Any]
    simulated: dict[str, float]
    skipped: list[str]


# ----------------------------------------------------------------------------------------------
# Seeds and splits


def case_seeds(seed: int, n: int) -> list[int]:
    """The seeds of cases 0..n-1 of a dataset seeded with ``seed``.

    Case ``i``'s seed is child ``i`` of ``numpy.random.SeedSequence(seed)``: it does not depend on
    ``n``, so a larger dataset with the same seed starts with the same cases.
    """
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(check_seed(seed)).spawn(n)]


def case_sub_seeds(case_seed: int) -> dict[str, int]:
    """Independent seeds of one case's random parts, all derived from its seed.

    ``spect_noise`` is :func:`DosimetryCore.imaging.simulation.noise_seeds`'s SPECT seed (children 0 and 1
    of ``SeedSequence(case_seed)`` are the noise seeds); ``anatomy``, ``activity`` and
    ``total_activity`` are children 2, 3 and 4.
    """
    children = np.random.SeedSequence(check_seed(case_seed, "case seed")).spawn(5)
    anatomy, activity, total = (int(child.generate_state(1)[0]) for child in children[2:])
    return {
        "anatomy": anatomy,
        "activity": activity,
        "total_activity": total,
        "spect_noise": simulation.noise_seeds(case_seed)[1],
    }


def split_of(case_seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> str:
    """The split (train, val or test) of a case, a function of its seed alone.

    A number u in [0, 1) is taken from the sha256 of the seed; the case is ``train`` when
    u < fractions[0], ``val`` when u < fractions[0] + fractions[1], else ``test``. So a case never
    changes split when a dataset grows, when cases are simulated in another order, or on resume.
    """
    train, val, _ = _check_fractions(fractions)
    digest = hashlib.sha256(f"{_SPLIT_SALT} {check_seed(case_seed, 'case seed')}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return "train" if u < train else "val" if u < train + val else "test"


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise ValueError(f"split_fractions: expected 3 shares >= 0 (train, val, test) summing to 1, got {values}")
    return values


# ----------------------------------------------------------------------------------------------
# One case


def region_labelmap(truth: sitk.Image) -> sitk.Image:
    """Regions of the true activity for iterative Yang PVC: connected components of ``truth > 0``.

    :func:`DosimetryCore.phantoms.random_activity` does not return the masks of its random shapes,
    so the regions are taken from the truth itself (seed 003 likewise gave IY-PVC the ground-truth
    activity mask): every face-connected (6-neighbour) component of the active voxels is one
    region, labelled 1..K by size, largest first; label 0 is the inactive rest. Touching shapes
    form one region. Returns a uint32 labelmap on the truth's grid.
    """
    active = sitk.GetArrayViewFromImage(truth) > 0
    components, count = ndimage.label(active)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    relabel = np.zeros(count + 1, dtype=np.uint32)
    relabel[1 + np.argsort(-sizes, kind="stable")] = np.arange(1, count + 1, dtype=np.uint32)
    image = sitk.GetImageFromArray(relabel[components])
    image.CopyInformation(truth)
    image.SetMetaData(QUANTITY_KEY, "regions of the true activity (connected components)")
    return image


def simulate_pvc_case(
    seed: int,
    size: int = 128,
    spacing_mm: float = 4.8,
    acquisition: simulation.Acquisition = DEFAULT_ACQUISITION,
    total_activity_range_MBq: tuple[float, float] = TOTAL_ACTIVITY_RANGE_MBQ,
    *,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> PVCCase:
    """Simulate one DL-PVC training case (seed 003): true activity, CT, regions and four OSEM images.

    The body is a :func:`~DosimetryCore.phantoms.make_torso` phantom (``size``^3 voxels of
    ``spacing_mm`` mm; its field of view must hold about 500 x 360 x 610 mm, e.g. 128 x 4.8 mm
    or 32 x 19.2 mm); only its CT and body outline are used. The activity is a
    :func:`~DosimetryCore.phantoms.random_activity` distribution inside the body, with:

    - random shapes of 9.6-240 mm diameter (:data:`SHAPE_DIAMETER_MM`, seed 003's 4-100 voxels of
      2.4 mm), each multiplied by a smooth non-uniform pattern (the default levels 1-10,
      heterogeneity 0.5, 40 mm correlation), added until a target active volume is reached;
    - target active volume U(1 %, 10 %) of the body (:data:`ACTIVE_FRACTION`): 0.4-5 L of this
      40-50 L torso, from kidneys and spleen alone (about 0.5 L) to liver, kidneys, spleen,
      bladder and a large tumour burden;
    - total activity in the field of view log-uniform in ``total_activity_range_MBq`` (default
      300-3000 MBq, :data:`TOTAL_ACTIVITY_RANGE_MBQ`).

    Seed 003 scaled its distributions to the active volumes and total activities of 717
    peri-therapeutic 177Lu SPECT/CT acquisitions (429 PSMA-I&T, 288 DOTATATE; 202 patients) but
    gives the ranges only in its supplement, so these ranges are ours: 300-3000 MBq is our
    estimate of the activity left in a torso field of view 1 to 4 days after 3.7-7.4 GBq (seed
    003's latest acquisitions were 4 days after injection). The noise level of the noisy
    reconstructions follows from it and from ``acquisition``'s sensitivity and time per view.

    SPECT: :func:`~DosimetryCore.imaging.simulation.simulate_spect` with ``acquisition`` (default: seed
    003's 120 views x 30 s, MELP, noRR 10x2 and RR 6x6 OSEM), Poisson noise seeded from the case
    seed. ``masks`` is :func:`region_labelmap` of the truth. Deterministic for a seed and device.

    Returns:
        :class:`PVCCase` with images ``truth`` (Bq/mL), ``ct`` (HU), ``masks`` (labelmap) and the
        four :data:`RECONSTRUCTIONS` (Bq/mL), all (z, y, x) = (size, size, size) float32 (masks
        uint32) on one grid, each carrying the case provenance under
        :data:`DosimetryCore.core.metadata.PROVENANCE_KEY`.
    """
    report = progress or no_progress
    seed = check_seed(seed)
    total_range = check_range(total_activity_range_MBq, "total_activity_range_MBq")
    device = resolve_device(device)
    seeds = case_sub_seeds(seed)
    report(0.0, "Body phantom")
    body = phantoms.make_torso(size, spacing_mm, seed=seeds["anatomy"])
    low, high = np.log(total_range)
    total_MBq = float(np.exp(np.random.default_rng(seeds["total_activity"]).uniform(low, high)))
    report(0.05, "Random activity distribution")
    truth = phantoms.random_activity(
        body,
        seeds["activity"],
        total_activity_MBq=total_MBq,
        active_fraction=ACTIVE_FRACTION,
        shape_diameter_mm=SHAPE_DIAMETER_MM,
    )
    masks = region_labelmap(truth)
    spect = simulation.simulate_spect(
        truth, body.ct, acquisition, seed=seeds["spect_noise"], device=device, progress=sub_progress(report, 0.1, 1.0)
    )
    activity_record = read_provenance(truth)
    provenance = {
        "generator": "DLPVCLib.dataset.simulate_pvc_case",
        "deepdosimetry": DosimetryCore.__version__,
        "seed": seed,
        "seeds": seeds,
        "size": int(size),
        "spacing_mm": float(spacing_mm),
        "acquisition": asdict(acquisition),
        "total_activity_range_MBq": list(total_range),
        "total_activity_MBq": total_MBq,
        "active_fraction": activity_record["active_fraction"],
        "n_shapes": activity_record["n_shapes"],
        "n_regions": int(sitk.GetArrayViewFromImage(masks).max()),
        "device": device.type,
    }
    images = {"truth": truth, "ct": body.ct, "masks": masks, **{key: spect[key] for key in RECONSTRUCTIONS}}
    for image in images.values():
        stamp(image, provenance)
    report(1.0, "Case done")
    return PVCCase(images, provenance)


# ----------------------------------------------------------------------------------------------
# A dataset folder


def _case_id(index: int) -> str:
    return f"case_{index:05d}"


def build_manifest(
    n: int,
    seed: int,
    size: int,
    spacing_mm: float,
    acquisition: simulation.Acquisition,
    total_activity_range_MBq: tuple[float, float] = TOTAL_ACTIVITY_RANGE_MBQ,
    split_fractions: Sequence[float] = SPLIT_FRACTIONS,
) -> dict[str, Any]:
    """The manifest of a dataset: parameters, and each case's id, seed and split (no timings, so hashable)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n: expected a number of cases >= 1, got {n!r}")
    fractions = _check_fractions(split_fractions)
    cases = [
        {"id": _case_id(i), "seed": s, "split": split_of(s, fractions)} for i, s in enumerate(case_seeds(seed, n))
    ]
    return {
        "format": MANIFEST_FORMAT,
        "generator": "DLPVCLib.dataset.write_dataset",
        "deepdosimetry": DosimetryCore.__version__,
        "reference": "seed 003: Leube et al., J Nucl Med 2024;65:980-987",
        "dataset_seed": int(seed),
        "n": int(n),
        "size": int(size),
        "spacing_mm": float(spacing_mm),
        "acquisition": asdict(acquisition),
        "total_activity_range_MBq": list(check_range(total_activity_range_MBq, "total_activity_range_MBq")),
        "active_fraction": list(ACTIVE_FRACTION),
        "shape_diameter_mm": list(SHAPE_DIAMETER_MM),
        "split_fractions": list(fractions),
        "images": {stem: f"{stem}.nrrd" for stem in CASE_IMAGES},
        "units": {"truth": ACTIVITY_UNIT, "ct": "HU", "masks": "label"} | dict.fromkeys(RECONSTRUCTIONS, ACTIVITY_UNIT),
        "split_counts": {name: sum(case["split"] == name for case in cases) for name in SPLITS},
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
    return command


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a dataset folder; ValueError when the folder or a valid manifest is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"data: {folder} is not a folder (simulate one with `deepdosimetry simulate-pvc`)")
    path = folder / MANIFEST
    if not path.is_file():
        raise ValueError(f"data: {folder} holds no {MANIFEST}; it is not a DL-PVC dataset")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"data: {path} is not valid JSON ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or "cases" not in manifest:
        raise ValueError(f"data: {path} is not a DL-PVC dataset manifest (format {MANIFEST_FORMAT})")
    return manifest


def manifest_sha256(folder: str | os.PathLike) -> str:
    """sha256 of a dataset's manifest file: names the exact dataset in model cards and summaries."""
    read_manifest(folder)
    return hashlib.sha256((Path(folder) / MANIFEST).read_bytes()).hexdigest()


def is_complete(case_folder: Path, case_seed: int) -> bool:
    """Whether a case folder holds every image and a record of the expected seed."""
    record = case_folder / CASE_RECORD
    if not record.is_file() or not all((case_folder / f"{stem}.nrrd").is_file() for stem in CASE_IMAGES):
        return False
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("seed") == case_seed
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _write_text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _comparable(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what may change between runs of one dataset (its size and case list)."""
    return {key: value for key, value in manifest.items() if key not in ("n", "cases", "split_counts")}


def _prepare_folder(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Create ``out_dir`` and write the manifest, refusing one of a different dataset."""
    path = out_dir / MANIFEST
    if path.exists():
        old = _comparable(read_manifest(out_dir))
        new = _comparable(manifest)
        differing = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
        if differing:
            raise ValueError(
                f"out: {out_dir} holds another dataset ({', '.join(differing)} differ); use a new folder"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(path, json.dumps(manifest, indent=2) + "\n")


def _simulate_and_write(
    out_dir: Path,
    case_id: str,
    case_seed: int,
    parameters: dict[str, Any],
    device: str | None,
    progress: ProgressCallback | None = None,
) -> float:
    """Simulate one case into ``.<id>.partial`` and rename it to ``<id>``; returns the wall time (s)."""
    started = time.perf_counter()
    final, partial = out_dir / case_id, out_dir / f".{case_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    case = simulate_pvc_case(case_seed, **parameters, device=device, progress=progress)
    for stem, image in case.images.items():
        io.write_image(image, partial / f"{stem}.nrrd")
    wall_time = time.perf_counter() - started
    record = {**case.provenance, "id": case_id, "wall_time_s": wall_time}
    (partial / CASE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(partial, final)
    return wall_time


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_pool(
    out_dir: Path,
    todo: list[dict[str, Any]],
    parameters: dict[str, Any],
    device: str | None,
    workers: int,
    report: ProgressCallback,
) -> dict[str, float]:
    """Simulate ``todo`` cases in ``workers`` processes, each limited to its share of the CPU threads."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    times: dict[str, float] = {}
    context = get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads, initargs=(threads,))
    try:
        pending = {
            pool.submit(_simulate_and_write, out_dir, case["id"], case["seed"], parameters, device): case["id"]
            for case in todo
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                case_id = pending.pop(future)
                times[case_id] = future.result()
                report(len(times) / len(todo), f"{case_id} done ({len(times)}/{len(todo)})")
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return times


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
    workers: int = 1,
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
        size, spacing_mm, acquisition, total_activity_range_MBq: as in :func:`simulate_pvc_case`.
        split_fractions: train/val/test shares for :func:`split_of`.
        workers: processes simulating cases in parallel (spawned, so a calling script needs the
            ``if __name__ == "__main__":`` guard; each gets cpu_count / workers torch threads).
            1 runs in this process.
        device: torch device of the SPECT simulation (``None``: CUDA when available).
        progress: ``progress(fraction, message)``; may raise
            :class:`~DosimetryCore.core.progress.Cancelled` (finished cases stay).

    Returns:
        :class:`WriteResult`: the manifest, the simulated cases with their wall times (s) and the
        skipped (already complete) ones.
    """
    report = progress or no_progress
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    device_name = str(resolve_device(device))
    out_dir = Path(out_dir)
    manifest = build_manifest(n, seed, size, spacing_mm, acquisition, total_activity_range_MBq, split_fractions)
    phantoms.make_torso(size, spacing_mm, seed=0, n_lesions=0)  # refuse a field of view too small before writing
    _prepare_folder(out_dir, manifest)
    for stale in out_dir.glob(".case_*.partial"):  # left by an interrupted run
        shutil.rmtree(stale)
    todo = [case for case in manifest["cases"] if not is_complete(out_dir / case["id"], case["seed"])]
    skipped = [case["id"] for case in manifest["cases"] if case not in todo]
    parameters = {
        "size": int(size),
        "spacing_mm": float(spacing_mm),
        "acquisition": acquisition,
        "total_activity_range_MBq": tuple(manifest["total_activity_range_MBq"]),
    }
    report(0.0, f"{len(todo)} case(s) to simulate, {len(skipped)} complete")
    if workers == 1 or len(todo) <= 1:
        times = {}
        for index, case in enumerate(todo):
            case_progress = sub_progress(report, index / len(todo), (index + 1) / len(todo))
            times[case["id"]] = _simulate_and_write(
                out_dir, case["id"], case["seed"], parameters, device_name, case_progress
            )
    else:
        times = _run_pool(out_dir, todo, parameters, device_name, min(workers, len(todo)), report)
    report(1.0, f"dataset complete: {len(manifest['cases'])} case(s) in {out_dir}")
    return WriteResult(manifest, times, skipped)


# ----------------------------------------------------------------------------------------------
# Training access


class PVCDataset(Dataset):
    """One split of a DL-PVC dataset folder as ``(input, target)`` tensor pairs.

    Args:
        folder: a dataset folder written by :func:`write_dataset`.
        split: ``"train"``, ``"val"`` or ``"test"`` (the manifest's assignment).
        input_key: the reconstruction fed to the network, one of :data:`RECONSTRUCTIONS` (default
            ``"osem_rr_noisy"``, seed 003's RR_n, its clinical setting).
        flips: mirror each item along each of z, y and x with probability 1/2 (the same flips for
            input and target), drawn from torch's global generator (which
            :func:`DosimetryCore.learning.training.train` seeds per epoch). A mirrored pair is itself a
            valid training pair: the simulated orbit is circular with equally spaced views over
            360 degrees about the grid's centre, so mirroring the activity and its attenuation
            map mirrors the reconstruction (up to interpolation in the projector), and each case
            stands for 8. Off by default (evaluation).

    Items:
        ``(input, target)``: float32 tensors of shape (1, z, y, x) in Bq/mL: the reconstruction
        and the true activity concentration (no normalisation: :class:`DLPVCModel` normalises its
        input itself). Every case of the split must be complete.

    Raises:
        ValueError: missing folder or manifest, unknown split or input, an empty split, an
        incomplete case.
    """

    def __init__(
        self, folder: str | os.PathLike, split: str = "train", input_key: str = "osem_rr_noisy", flips: bool = False
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split: unknown {split!r}; choose one of {', '.join(SPLITS)}")
        if input_key not in RECONSTRUCTIONS:
            raise ValueError(f"input: unknown reconstruction {input_key!r}; choose one of {', '.join(RECONSTRUCTIONS)}")
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.split, self.input_key, self.flips = split, input_key, bool(flips)
        self.cases = [case for case in self.manifest["cases"] if case["split"] == split]
        if not self.cases:
            raise ValueError(
                f"split: the {split!r} split of {self.folder} is empty "
                f"({self.manifest['split_counts']}); simulate more cases (--n)"
            )
        incomplete = [case["id"] for case in self.cases if not is_complete(self.folder / case["id"], case["seed"])]
        if incomplete:
            raise ValueError(
                f"data: {len(incomplete)} {split} case(s) of {self.folder} are incomplete ({', '.join(incomplete[:5])}"
                f"{', ...' if len(incomplete) > 5 else ''}); run simulate-pvc again to finish them"
            )

    @property
    def case_ids(self) -> list[str]:
        """Ids (folder names) of the split's cases, in manifest order."""
        return [case["id"] for case in self.cases]

    def __len__(self) -> int:
        return len(self.cases)

    def image(self, index: int, stem: str) -> sitk.Image:
        """Image ``stem`` (one of :data:`CASE_IMAGES`) of case ``index`` of the split, as written."""
        if stem not in CASE_IMAGES:
            raise ValueError(f"stem: unknown image {stem!r}; choose one of {', '.join(CASE_IMAGES)}")
        return io.read_image(self.folder / self.cases[index]["id"] / f"{stem}.nrrd")

    def _tensor(self, index: int, stem: str) -> torch.Tensor:
        image = self.image(index, stem)
        unit = image.GetMetaData(UNIT_KEY) if image.HasMetaDataKey(UNIT_KEY) else None
        if unit != ACTIVITY_UNIT:
            raise ValueError(f"{self.cases[index]['id']}/{stem}.nrrd: unit is {unit}, expected {ACTIVITY_UNIT}")
        return torch.from_numpy(sitk.GetArrayFromImage(image).astype(np.float32, copy=False))[None]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair = self._tensor(index, self.input_key), self._tensor(index, "truth")
        if not self.flips:
            return pair
        dims = [dim for dim in (1, 2, 3) if torch.randint(0, 2, ()).item()]
        return tuple(tensor.flip(dims) for tensor in pair) if dims else pair
