"""Held-out evaluation of DL-PVC against no correction and iterative Yang PVC (seed 003, Table 1).

For every case of a split (default ``test``) of a DL-PVC dataset, three images are compared with
the true activity: the reconstruction itself (``None``), iterative Yang PVC of it (``IY-PVC``,
:func:`DLPVCLib.iterative_yang.iterative_yang`, 10 iterations, as seed 003 ran PETPVC) and the
network's output (``DL-PVC``). The metrics are seed 003's (:mod:`DosimetryCore.evaluation.metrics`):

- SSIM inside the true active region (``truth > 0``), data range = max(truth) - min(truth) of the
  whole image (the dynamic range of the truth, 0 to its maximum);
- NRMSE (%) inside the true active region, normalised by the range of the truth there (see
  :data:`DosimetryCore.evaluation.table.NRMSE_NORMALIZATION`);
- VAA (%): share of the true active voxels within 5 % of the true activity concentration;
- AD (%): deviation of the total activity in the whole image from the true total. DL-PVC keeps
  the input's total, so its AD equals that of ``None`` (seed 003 Table 1).

Reported as mean and standard deviation over the cases, as seed 003's Table 1.

IY-PVC's inputs follow seed 003: the ground-truth regions (``masks.nrrd``, connected components
of the true activity, see :func:`DLPVCLib.dataset.region_labelmap`) and the spatial resolution of
the reconstruction as found by a matched-filter analysis (seed 003: 8.75 mm for RR and 21.35 mm for
noRR OSEM): here :func:`matched_filter_fwhm`, the isotropic Gaussian FWHM whose blur of the true
activity best matches (least squares) the noise-free reconstruction of the same kind, averaged
over up to :data:`CALIBRATION_CASES` validation cases (never the evaluated test cases). For
reference the collimator's FWHM at the radius of rotation (:func:`system_fwhm_mm`) is reported too.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from scipy.optimize import minimize_scalar
from torch import nn

from DLPVCLib.correction import INFERENCE, TrainedModel, correct_dl
from DLPVCLib.dataset import PVCDataset, manifest_sha256, read_manifest, simulate_command, split_reconstructions
from DLPVCLib.dataset.activity_kinds import recovery_segments
from DLPVCLib.iterative_yang import iterative_yang, psf_blur
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.evaluation.metrics import recovery_coefficient
from DosimetryCore.evaluation.table import METRICS, RC_PREFIX, image_metrics
from DosimetryCore.evaluation.table import SETTINGS as TABLE_SETTINGS
from DosimetryCore.imaging.collimators import collimator_response
from DosimetryCore.imaging.simulation import Acquisition
from DosimetryCore.io.tables import write_csv

METHODS = ("None", "IY-PVC", "DL-PVC")
"""Metric keys of the result rows and their column titles (seed 003 Table 1)."""

IY_ITERATIONS = 10
"""Iterations of iterative Yang PVC (seed 003: 10, with PETPVC)."""

CALIBRATION_CASES = 5
"""Validation cases the matched-filter FWHM of IY-PVC is averaged over."""

NOISE_FREE = {
    "osem_norr_noise_free": "osem_norr_noise_free",
    "osem_norr_noisy": "osem_norr_noise_free",
    "osem_rr_noise_free": "osem_rr_noise_free",
    "osem_rr_noisy": "osem_rr_noise_free",
}
"""The noise-free reconstruction of the same kind, for the matched filter (seed 003 used one FWHM per kind)."""


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes:
        cases: one row per case and method: ``case``, ``method`` and the :data:`METRICS` keys.
        table: one row per method: ``method``, ``n`` and ``<metric>_mean`` / ``<metric>_std``
            (sample standard deviation, 0 for one case).
        settings: split, input, cases, dataset manifest sha256, IY-PVC FWHM and how it was found.
    """

    cases: list[dict[str, Any]]
    table: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)


def case_metrics(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The metric table row (:mod:`DosimetryCore.evaluation.table`) of one image; arrays (z, y, x) in Bq/mL."""
    return image_metrics(estimate, truth)


def system_fwhm_mm(acquisition: Acquisition) -> float:
    """FWHM (mm) of the collimator-detector response at the radius of rotation (a source on the axis)."""
    response = collimator_response(acquisition.collimator, acquisition.energy_keV, acquisition.intrinsic_fwhm_mm)
    return float(response.fwhm_mm(acquisition.radius_mm))


def matched_filter_fwhm(truth: sitk.Image, reconstruction: sitk.Image, upper_mm: float) -> float:
    """Isotropic FWHM (mm) of the Gaussian G minimising sum((G(truth) - reconstruction)^2).

    G is :func:`DLPVCLib.iterative_yang.psf_blur`, the blur IY-PVC itself uses; the FWHM is
    searched between a tenth of the smallest voxel size and ``upper_mm`` (bounded Brent search,
    0.05 mm tolerance).
    """
    target = sitk.GetArrayFromImage(reconstruction).astype(np.float64)

    def error(fwhm: float) -> float:
        blurred = sitk.GetArrayFromImage(psf_blur(truth, (fwhm, fwhm, fwhm)))
        return float(np.sum((blurred - target) ** 2))

    lower = 0.1 * min(truth.GetSpacing())
    return float(minimize_scalar(error, bounds=(lower, upper_mm), method="bounded", options={"xatol": 0.05}).x)


def calibrate_iy_fwhm(
    folder: str | os.PathLike, input_key: str, progress: ProgressCallback | None = None
) -> tuple[float, list[float]]:
    """IY-PVC FWHM (mm) for ``input_key``: mean matched-filter FWHM over the first validation cases.

    Returns ``(mean, per-case values)``. Raises ValueError when the dataset has no validation case or does not
    hold the noise-free twin of ``input_key``.
    """
    report = progress or no_progress
    twin = NOISE_FREE[input_key]
    if twin not in split_reconstructions(read_manifest(folder), "val"):
        raise ValueError(
            f"iy-fwhm: {folder} holds no {twin}, whose match to the truth gives IY-PVC's FWHM; give --iy-fwhm-mm "
            f"or simulate the dataset with --reconstructions {input_key} {twin}"
        )
    calibration = PVCDataset(folder, "val", twin)
    upper = 2.0 * system_fwhm_mm(Acquisition(**calibration.manifest["acquisition"]))
    count = min(len(calibration), CALIBRATION_CASES)
    values = []
    for index in range(count):
        report(index / count, f"matched filter: {calibration.case_ids[index]}")
        truth, reconstruction = calibration.image(index, "truth"), calibration.image(index, twin)
        values.append(matched_filter_fwhm(truth, reconstruction, upper))
    report(1.0, "matched filter done")
    return float(np.mean(values)), values


RECOVERY_COLUMNS = {
    "rc_error_organs": "mean |RC - 1| of the case's organs",
    "rc_error_lesions": "mean |RC - 1| of the case's lesions (NaN without one)",
    "rc_error": "mean |RC - 1| of the case's organs and lesions together",
}
"""Columns a ``torso`` dataset's rows add to :data:`METRICS`, besides ``RC <organ>`` for every organ of
:data:`~DLPVCLib.dataset.activity_kinds.RC_ORGANS`."""


def _recovery_row(estimate: np.ndarray, truth: np.ndarray, masks: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """A torso case's recovery columns: RC of each organ (:data:`RC_PREFIX`) and the :data:`RECOVERY_COLUMNS`."""
    organs, lesions = recovery_segments(masks, voxel_ml)
    organ_rc = {name: recovery_coefficient(estimate, truth, mask) for name, mask in organs.items()}
    organ_errors = [abs(value - 1.0) for value in organ_rc.values()]
    lesion_errors = [abs(recovery_coefficient(estimate, truth, mask) - 1.0) for mask in lesions.values()]
    return {
        **{f"{RC_PREFIX}{name}": value for name, value in organ_rc.items()},
        "rc_error_organs": float(np.mean(organ_errors)),
        "rc_error_lesions": float(np.mean(lesion_errors)) if lesion_errors else math.nan,
        "rc_error": float(np.mean(organ_errors + lesion_errors)),
    }


def _summary_rows(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: the number of cases and the mean and sample sd of every numeric column (NaN left out)."""
    table = []
    for method in METHODS:
        rows = [row for row in cases if row["method"] == method]
        entry: dict[str, Any] = {"method": method, "n": len(rows)}
        keys = [key for key in rows[0] if key not in ("case", "method")]
        for key in keys:
            values = np.array([row.get(key, math.nan) for row in rows], dtype=np.float64)
            values = values[np.isfinite(values)]
            entry[f"{key}_mean"] = float(values.mean()) if values.size else math.nan
            entry[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        table.append(entry)
    return table


def as_trained_model(model: TrainedModel | nn.Module, image: sitk.Image) -> TrainedModel:
    """``model`` as :func:`DLPVCLib.correction.correct_dl` takes it.

    A card without a network grid, or a bare network (a checkpoint's, or one being trained, named
    unregistered), gets the dataset's own grid (``image``'s size and spacing), so that the
    resampling onto the network grid leaves the input as it is.
    """
    grid = {"grid": {"size": list(image.GetSize()), "spacing_mm": list(image.GetSpacing())}}
    if isinstance(model, TrainedModel):
        return model if "grid" in model.card else TrainedModel(model.network, grid | model.card)
    card = {"name": "unregistered network", "weights_sha256": "unregistered", "architecture": model.config}
    return TrainedModel(model, card | grid)


def evaluate(
    model: TrainedModel | nn.Module,
    folder: str | os.PathLike,
    split: str = "test",
    *,
    input_key: str = "osem_rr_noisy",
    iy_fwhm_mm: float | None = None,
    iy_iterations: int = IY_ITERATIONS,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    mirror_ensemble: bool = True,
) -> Evaluation:
    """Evaluate no correction, IY-PVC and DL-PVC (``model``) on every case of a split.

    Args:
        model: a loaded model (:func:`DLPVCLib.correction.load_dlpvc_model`) or a bare
            :class:`~DLPVCLib.networks.DLPVCModel` (see :func:`as_trained_model`); moved to
            ``device`` and put in eval mode. DL-PVC runs through
            :func:`~DLPVCLib.correction.correct_dl`, the path of the ``pvc`` command.
        folder: dataset folder of :func:`DLPVCLib.dataset.write_dataset`.
        split: the held-out split (default ``"test"``).
        input_key: the reconstruction corrected, one of :data:`DLPVCLib.dataset.RECONSTRUCTIONS`.
        iy_fwhm_mm: isotropic FWHM (mm) of IY-PVC; ``None``: :func:`calibrate_iy_fwhm` on the
            validation split.
        iy_iterations: IY-PVC iterations (seed 003: 10).
        device: torch device of the network (``None``: CUDA when available).
        progress: ``progress(fraction, message)``.
        mirror_ensemble: DL-PVC as the mean over the 8 mirror images (``correct_dl``'s default, the production
            path); ``False``: one pass.

    Returns:
        :class:`Evaluation` with per-case rows, the mean/std table and the settings.

    Raises:
        ValueError: missing data, unknown split or input, an empty split, no validation case to
            calibrate IY-PVC on (pass ``iy_fwhm_mm``), a non-positive FWHM.
    """
    report = progress or no_progress
    data = PVCDataset(folder, split, input_key)
    device = resolve_device(device)
    kind = data.manifest.get("kind", "random")
    voxel_ml = float(data.manifest["spacing_mm"]) ** 3 / 1000.0
    trained = as_trained_model(model, data.image(0, input_key))
    trained.network.to(device).eval()
    if iy_fwhm_mm is None:
        fwhm, calibration = calibrate_iy_fwhm(folder, input_key, sub_progress(report, 0.0, 0.1))
        source = f"matched filter of {NOISE_FREE[input_key]} on {len(calibration)} validation case(s)"
    else:
        fwhm, calibration, source = float(iy_fwhm_mm), [], "given"
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise ValueError(f"iy_fwhm_mm: expected a positive FWHM in mm, got {fwhm}")
    rows = []
    for index, case_id in enumerate(data.case_ids):
        report(0.1 + 0.9 * index / len(data), f"evaluating {case_id} ({index + 1}/{len(data)})")
        truth = sitk.GetArrayFromImage(data.image(index, "truth")).astype(np.float64)
        reconstruction = data.image(index, input_key)
        corrected = iterative_yang(reconstruction, data.image(index, "masks"), (fwhm,) * 3, iy_iterations)
        values = sitk.GetArrayFromImage(reconstruction)
        dl = correct_dl(reconstruction, trained, device=device, mirror_ensemble=mirror_ensemble)
        estimates = {
            "None": values,
            "IY-PVC": sitk.GetArrayFromImage(corrected),
            "DL-PVC": sitk.GetArrayFromImage(dl),
        }
        rows += [{"case": case_id, "method": m, **case_metrics(estimates[m], truth)} for m in METHODS]
        if kind == "torso":
            masks = sitk.GetArrayFromImage(data.image(index, "masks"))
            for row in rows[-len(METHODS) :]:
                row.update(_recovery_row(estimates[row["method"]], truth, masks, voxel_ml))
    report(1.0, f"evaluated {len(data)} case(s)")
    acquisition = Acquisition(**data.manifest["acquisition"])
    settings = {
        "data": str(Path(folder).resolve()),
        "manifest_sha256": manifest_sha256(folder),
        "simulated_with": simulate_command(data.manifest),
        "kind": kind,
        "spacing_mm": float(data.manifest["spacing_mm"]),
        "size": int(data.manifest["size"]),
        "split": split,
        "n_cases": len(data),
        "input": input_key,
        "iy_fwhm_mm": fwhm,
        "iy_fwhm_source": source,
        "iy_fwhm_per_calibration_case_mm": calibration,
        "iy_iterations": iy_iterations,
        "system_fwhm_at_radius_mm": system_fwhm_mm(acquisition),
        "dl_pvc": "DLPVCLib.correction.correct_dl (the pvc command's path)",
        "dl_pvc_inference": INFERENCE[mirror_ensemble],
        **TABLE_SETTINGS,
    }
    return Evaluation(rows, _summary_rows(rows), settings)


def _markdown(evaluation: Evaluation, title: str) -> str:
    header = "| PVC method | " + " | ".join(METRICS.values()) + " |"
    lines = [f"# {title}", "", header, "|---" * (len(METRICS) + 1) + "|"]
    digits = {key: 3 if key == "ssim" else 2 for key in METRICS}  # as seed 003 Table 1
    for row in evaluation.table:
        cells = [f"{row[f'{key}_mean']:.{digits[key]}f} ({row[f'{key}_std']:.{digits[key]}f})" for key in METRICS]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    settings = evaluation.settings
    recovery = [key[: -len("_mean")] for key in evaluation.table[0] if key.endswith("_mean") and (
        key.startswith(RC_PREFIX) or key[: -len("_mean")] in RECOVERY_COLUMNS)]  # fmt: skip
    if recovery:
        lines += ["", "| PVC method | " + " | ".join(recovery) + " |", "|---" * (len(recovery) + 1) + "|"]
        for row in evaluation.table:
            cells = [f"{row[f'{key}_mean']:.3f} ({row[f'{key}_std']:.3f})" for key in recovery]
            lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
        lines += ["", "RC: mean estimate / mean truth in the organ; " + "; ".join(
            f"{key}: {words}" for key, words in RECOVERY_COLUMNS.items()) + "."]  # fmt: skip
    lines += [
        "",
        f"Mean (standard deviation) over {settings['n_cases']} {settings['split']} case(s) of "
        f"`{settings['input']}`; dataset manifest sha256 `{settings['manifest_sha256'][:12]}`.",
        f"SSIM, NRMSE and VAA inside the true active region, AD over the whole image; SSIM data range "
        f"{settings['ssim_data_range']}; NRMSE normalised by the truth's {settings['nrmse_normalization']}; "
        "VAA: voxels within 5 % of the truth.",
        f"IY-PVC: {settings['iy_iterations']} iterations, ground-truth regions, FWHM {settings['iy_fwhm_mm']:.2f} mm "
        f"({settings['iy_fwhm_source']}); collimator FWHM at the radius of rotation "
        f"{settings['system_fwhm_at_radius_mm']:.2f} mm.",
        "",
    ]
    return "\n".join(lines)


def write_table(evaluation: Evaluation, path_csv: str | os.PathLike, title: str = "DL-PVC evaluation") -> list[Path]:
    """Write the evaluation: the mean/std table as CSV (``path_csv``) and Markdown (``.md`` beside it),
    the per-case rows (``<stem>_cases.csv``) and the settings (``<stem>.json``); returns the paths.
    """
    path_csv = Path(path_csv)
    if path_csv.suffix.lower() != ".csv":
        raise ValueError(f"output: {path_csv.name} must end in .csv")
    path_csv.parent.mkdir(parents=True, exist_ok=True)
    markdown, cases, settings = (
        path_csv.with_suffix(".md"),
        path_csv.with_name(f"{path_csv.stem}_cases.csv"),
        path_csv.with_suffix(".json"),
    )
    write_csv(evaluation.table, path_csv)
    write_csv(evaluation.cases, cases)
    markdown.write_text(_markdown(evaluation, title), encoding="utf-8")
    settings.write_text(json.dumps(evaluation.settings, indent=2) + "\n", encoding="utf-8")
    return [path_csv, markdown, cases, settings]


def card_metrics(evaluation: Evaluation, training_spacing_mm: float | None = None) -> dict[str, Any]:
    """Model card fields from an evaluation's means: ``metrics``, ``baselines`` and ``evaluation`` for seed 003's
    random shapes; ``evaluation_<kind>`` (the same three inside) for another kind of data, e.g. the patient-like
    torsos, with their recovery columns. Data on another voxel size than ``training_spacing_mm`` (the model's
    grid; ``None``: not compared) get a table of their own, ``evaluation_<kind>_<spacing>mm`` (e.g.
    ``evaluation_torso_4.8mm``: the clinical grid, corrected through the network grid).

    The card names the dataset folder only (its manifest sha256 identifies the data), never the
    path on the machine that evaluated it.
    """

    def means(method: str) -> dict[str, float]:
        row = next(row for row in evaluation.table if row["method"] == method)
        return {key[: -len("_mean")]: value for key, value in row.items() if key.endswith("_mean")}

    fields = {
        "metrics": means("DL-PVC"),
        "baselines": {"no PVC": means("None"), "IY-PVC": means("IY-PVC")},
        "evaluation": evaluation.settings | {"data": Path(evaluation.settings["data"]).name},
    }
    kind = evaluation.settings.get("kind", "random")
    spacing = evaluation.settings.get("spacing_mm")
    if training_spacing_mm is not None and spacing is not None and not math.isclose(spacing, training_spacing_mm):
        return {f"evaluation_{kind}_{spacing:g}mm": fields}
    return fields if kind == "random" else {f"evaluation_{kind}": fields}
