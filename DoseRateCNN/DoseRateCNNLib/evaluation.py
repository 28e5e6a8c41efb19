"""Held-out evaluation of dose-rate methods as Li et al.'s Tables I and II: mean dose error and NRMSE per region.

For every test case of a ``simulate-dose`` dataset made with ``--mc-on-spect`` and every count level, three
dose-rate maps of the SPECT activity are compared with the Monte Carlo dose rate of the TRUE activity (the
label): VDK (stored, Li et al.'s whole-kernel density scaling), Monte Carlo of the SPECT (stored) and the CNN
(without ``--mc-on-spect``, VDK and the CNN only).

Per region R (voxels of the label map) and method:

- MDE (%) = |mean of the method's dose rate in R - mean of the label in R| / mean of the label in R x 100;
- NRMSE (%) = sqrt(mean over R of (method - label)^2) / mean of the label in R x 100 (eq. 2 of the paper).

Regions (the paper's): healthy liver (liver without lesions), liver (with its lesions), lesions (each lesion, a
connected component of the lesion labels, is one sample), spleen, right and left kidney (cortex and medulla),
lung-adjacent lesions (lesions that touch lung). Each row of the table gives the mean over samples (cases, or
lesions) with the range (min, max), as the paper prints them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.io.outputs import atomic_path
from DosimetryCore.io.tables import write_csv

from .dataset import load_case, manifest_sha256, read_manifest

METHODS = ("VDK", "MC on SPECT", "CNN")
REGIONS = (
    "healthy liver",
    "liver",
    "lesions",
    "spleen",
    "right kidney",
    "left kidney",
    "lung-adjacent lesions",
)
_ORGANS = {
    "healthy liver": ("liver",),
    "liver": ("liver", "lesion_liver"),
    "spleen": ("spleen",),
    "right kidney": ("kidney_right_cortex", "kidney_right_medulla"),
    "left kidney": ("kidney_left_cortex", "kidney_left_medulla"),
}
_LUNGS = ("lung_left", "lung_right")
MIN_VOXELS = 2
"""Regions with fewer voxels on the dose grid are left out (a lesion of one voxel has no partial volume to speak
of)."""

Predictor = Callable[[dict[str, Any], int], np.ndarray]
"""``predict(case_arrays, level)`` -> the CNN dose rate (Gy/h) on the case's dose grid."""


@dataclass
class DoseEvaluation:
    """Per-sample metrics and the summary table of :func:`evaluate_dose`."""

    samples: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    provenance: dict[str, Any]


def _values(names: dict[str, str], labels: np.ndarray, wanted: Sequence[str]) -> np.ndarray:
    values = [int(value) for value, name in names.items() if name in wanted]
    return np.isin(labels, values)


def region_masks(labels: np.ndarray, names: dict[str, str]) -> dict[str, list[np.ndarray]]:
    """Masks of each region of :data:`REGIONS` in a case: one per organ region, one per lesion."""
    masks: dict[str, list[np.ndarray]] = {
        region: [_values(names, labels, organs)] for region, organs in _ORGANS.items()
    }
    lesions = _values(names, labels, [name for name in names.values() if name.startswith("lesion_")])
    lungs = ndimage.binary_dilation(_values(names, labels, _LUNGS), iterations=1)
    components, count = ndimage.label(lesions)
    masks["lesions"], masks["lung-adjacent lesions"] = [], []
    for index in range(1, count + 1):
        lesion = components == index
        masks["lesions"].append(lesion)
        if (lesion & lungs).any():
            masks["lung-adjacent lesions"].append(lesion)
    return {region: [mask for mask in masks[region] if mask.sum() >= MIN_VOXELS] for region in REGIONS}


def region_errors(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(MDE %, NRMSE %) of ``estimate`` against ``truth`` in ``mask`` (see the module docstring)."""
    reference = float(truth[mask].mean(dtype=np.float64))
    difference = estimate[mask].astype(np.float64) - truth[mask]
    mde = abs(float(estimate[mask].mean(dtype=np.float64)) - reference) / reference * 100.0
    nrmse = math.sqrt(float(np.mean(difference**2))) / reference * 100.0
    return mde, nrmse


def _summary_rows(samples: list[dict[str, Any]], levels: Sequence[float]) -> list[dict[str, Any]]:
    rows = []
    for level_index, counts in [(None, None), *enumerate(levels)]:
        for region in REGIONS:
            for method in METHODS:
                chosen = [
                    s
                    for s in samples
                    if s["region"] == region and s["method"] == method and level_index in (None, s["level"])
                ]
                if not chosen:
                    continue
                mde, nrmse = (
                    np.array([s["MDE_percent"] for s in chosen]),
                    np.array([s["NRMSE_percent"] for s in chosen]),
                )
                rows.append(
                    {
                        "count_level": "all" if counts is None else f"{counts:.3g}",
                        "region": region,
                        "method": method,
                        "n": len(chosen),
                        "MDE_percent": float(mde.mean()),
                        "MDE_min": float(mde.min()),
                        "MDE_max": float(mde.max()),
                        "NRMSE_percent": float(nrmse.mean()),
                        "NRMSE_min": float(nrmse.min()),
                        "NRMSE_max": float(nrmse.max()),
                    }
                )
    return rows


def evaluate_dose(
    data: str | os.PathLike,
    predict: Predictor,
    *,
    split: str = "test",
    max_cases: int | None = None,
    progress: ProgressCallback | None = None,
) -> DoseEvaluation:
    """VDK, Monte Carlo on SPECT and the CNN (``predict``) against the label on every ``split`` case and level.

    A dataset simulated without ``--mc-on-spect`` (e.g. the val split of a training set) has no Monte Carlo dose
    rate of its SPECT: its table compares VDK and the CNN only.
    """
    report = progress or no_progress
    manifest = read_manifest(data)
    with_mc = bool(manifest["settings"].get("mc_on_spect"))
    cases = [case for case in manifest["cases"] if case["split"] == split][:max_cases]
    if not cases:
        raise ValueError(f"data: the {split!r} split of {data} is empty")
    levels = manifest["settings"]["count_levels"]
    samples = []
    for number, case in enumerate(cases):
        arrays = load_case(data, case, manifest["arrays"])
        names = arrays["record"]["label_names"]
        masks = region_masks(np.asarray(arrays["labels"]), names)
        truth = np.asarray(arrays["mc"])
        for level in range(len(levels)):
            report((number + level / len(levels)) / len(cases), f"{case['id']}, count level {level + 1}/{len(levels)}")
            estimates = {"VDK": np.asarray(arrays[f"vdk_{level}"])}
            if with_mc:
                estimates["MC on SPECT"] = np.asarray(arrays[f"mcspect_{level}"])
            estimates["CNN"] = predict(arrays, level)
            for region, region_list in masks.items():
                for index, mask in enumerate(region_list):
                    for method, estimate in estimates.items():
                        mde, nrmse = region_errors(estimate, truth, mask)
                        samples.append(
                            {
                                "case": case["id"],
                                "level": level,
                                "region": region,
                                "index": index,
                                "method": method,
                                "MDE_percent": mde,
                                "NRMSE_percent": nrmse,
                            }
                        )
    report(1.0, f"{len(cases)} case(s) evaluated")
    provenance = {
        "data": str(Path(data).resolve()),
        "manifest_sha256": manifest_sha256(data),
        "split": split,
        "cases": [case["id"] for case in cases],
        "count_levels": levels,
        "methods": [method for method in METHODS if with_mc or method != "MC on SPECT"],
        "reference": "Monte Carlo dose rate of the true activity",
    }
    return DoseEvaluation(samples, _summary_rows(samples, levels), provenance)


def _markdown(evaluation: DoseEvaluation, title: str) -> str:
    lines = [f"# {title}", "", f"{len(evaluation.provenance['cases'])} held-out case(s); count levels "
             + ", ".join(f"{c:.3g}" for c in evaluation.provenance["count_levels"]) + "; mean (min-max) over samples.",
             "", "| count level | region | method | n | MDE % | NRMSE % |", "|---|---|---|---|---|---|"]  # fmt: skip
    for row in evaluation.rows:
        lines.append(
            f"| {row['count_level']} | {row['region']} | {row['method']} | {row['n']} | {row['MDE_percent']:.1f} "
            f"({row['MDE_min']:.1f}-{row['MDE_max']:.1f}) | {row['NRMSE_percent']:.1f} ({row['NRMSE_min']:.1f}-"
            f"{row['NRMSE_max']:.1f}) |"
        )
    return "\n".join(lines) + "\n"


def write_tables(evaluation: DoseEvaluation, path_csv: str | os.PathLike, title: str) -> list[Path]:
    """The summary table as CSV and Markdown (``.md`` beside it) and the per-sample metrics (``_samples.csv``)."""
    path_csv = Path(path_csv)
    written = [
        write_csv(evaluation.rows, path_csv),
        write_csv(evaluation.samples, path_csv.with_name(f"{path_csv.stem}_samples.csv")),
    ]
    markdown = path_csv.with_suffix(".md")
    with atomic_path(markdown) as temporary:
        temporary.write_text(_markdown(evaluation, title), encoding="utf-8")
    return [*written, markdown]


def card_metrics(evaluation: DoseEvaluation) -> dict[str, Any]:
    """Model-card fields: the CNN's all-level metrics per region, and VDK's and MC's as baselines (no machine
    paths: the data is named by its manifest's sha256)."""
    overall = [row for row in evaluation.rows if row["count_level"] == "all"]

    def of(method: str) -> dict[str, float]:
        chosen = [row for row in overall if row["method"] == method]
        return {f"{row['region']} {key}": row[key] for row in chosen for key in ("MDE_percent", "NRMSE_percent")}

    return {
        "metrics": of("CNN"),
        "baselines": {"VDK on SPECT": of("VDK"), "Monte Carlo on SPECT": of("MC on SPECT")},
        "evaluation": {key: value for key, value in evaluation.provenance.items() if key != "data"},
        "held_out_table": evaluation.rows,
    }
