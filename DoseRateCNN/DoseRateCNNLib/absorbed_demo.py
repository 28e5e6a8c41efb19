"""``deepdosimetry demo-absorbed``: one virtual patient imaged at four time points, through SPECT, dose rate and
time integration, against its true absorbed dose.

1. A 177Lu-DOTATATE virtual patient (:func:`DosimetryCore.phantoms.make_torso`) whose compartments follow their
   own kinetics (:data:`KINETICS`: kidneys, liver, spleen, lesions with an uptake phase, the remainder with a
   fast and a slow clearance); each is a sum of exponentials a_i exp(-lambda_i t) in actual (decaying) activity.
2. The truth: the Monte Carlo dose rate (:func:`DosimetryCore.dose.compute_dose_rate`, ``mc``) of the true
   time-integrated activity map, integral 0..inf of each compartment's curve (Bq h/mL), which is the absorbed
   dose in Gy because the dose rate is linear in the activity.
3. At each time point (default 4, 24, 96, 168 h) the patient lies a little differently on the table (a rigid
   shift of a few mm and a small rotation, none at the first): SPECT (OSEM-RR) of the moved activity with the
   moved CT, with total counts proportional to the activity in the field (Li et al.'s 5.5e6 at 24 h).
4. Dose rate of each SPECT by the residual CNN and by VDK; absorbed dose by
   :func:`DosimetryCore.dose.absorbed.absorbed_dose` (CT registration onto the first time point, fit per
   segment chosen by AICc); and, to isolate registration and time integration from SPECT, the same chain on
   the VDK dose rate of the TRUE moved activity, against the VDK dose of the true time-integrated activity.

Writes ``absorbed.csv`` / ``absorbed.md`` (per segment: truth, each method and its error, the chosen model and
effective half-life), the report of :func:`DosimetryCore.evaluation.report.write_report` (figure, the metric
table, a Slicer scene), the absorbed-dose maps, ``curves.png`` and ``dvh.png``, and ``demo.json`` (provenance).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from DosimetryCore import io
from DosimetryCore.core.constants import LN2
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.volume import array_from_image, image_from_array, set_unit, with_total_of
from DosimetryCore.dose import compute_dose_rate
from DosimetryCore.dose.absorbed import ABSORBED_DOSE_UNIT, AbsorbedDose, TimePoint, absorbed_dose
from DosimetryCore.evaluation import report
from DosimetryCore.evaluation.histograms import cumulative_histograms, plot_histograms
from DosimetryCore.evaluation.time_curves import plot_time_curves
from DosimetryCore.imaging.count_levels import spect_at_count_levels
from DosimetryCore.imaging.simulation import Acquisition
from DosimetryCore.io.tables import write_csv, write_markdown
from DosimetryCore.phantoms import LABELS, make_torso

from .cnn import DEFAULT_MODEL, cnn_dose_rate, load_dose_model
from .data import torso_grid_size

DEMO_SEED = 18
"""Seed of the virtual patient, the SPECT noise and the Monte Carlo truth."""

Kinetics = tuple[tuple[float, float], ...]
"""A compartment's activity curve as terms (amplitude, effective half-life in h): sum of a exp(-ln2 t / T)."""

KINETICS: dict[str, tuple[tuple[str, ...], Kinetics]] = {
    "kidneys": (("kidney_right_cortex", "kidney_right_medulla", "kidney_left_cortex", "kidney_left_medulla"),
                ((1.0, 50.0),)),
    "liver": (("liver",), ((1.0, 75.0),)),
    "spleen": (("spleen",), ((1.0, 65.0),)),
    "lesions": (("lesion_liver", "lesion_bone", "lesion_lymph_node", "lesion_lung"), ((1.0, 100.0), (-1.0, 4.0))),
    "remainder": (("body", "lung_right", "lung_left", "spine", "ribs", "pelvis", "bladder", "parotid_right",
                   "parotid_left", "submandibular_right", "submandibular_left"), ((0.6, 3.0), (0.4, 40.0))),
}  # fmt: skip
"""Compartments (phantom labels) and their kinetics: plausible 177Lu-DOTATATE effective half-lives (kidneys about
50 h, liver and spleen 65-75 h, tumours about 100 h after an uptake phase, a fast-clearing remainder); a demo's
choice, not a fit to patient data. Each curve is scaled to 1 at :data:`PHANTOM_TIME_H`."""

MIN_LESION_ML = 0.5
"""The smallest lesion in the table: a sphere of 1 cm (the phantom's smallest lesions) holds 0.52 mL."""

PHANTOM_TIME_H = 24.0
"""The phantom's activity map is the activity at this time after administration."""

SHIFTS: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 0.0, 0.0, 0.0),
    (5.0, -3.0, 4.0, 2.0),
    (-4.0, 4.0, -5.0, -1.5),
    (3.0, 5.0, 2.0, 1.0),
)
"""Per time point, how the patient lies relative to the first: translation x, y, z (mm), rotation about z (deg)."""


@dataclass(frozen=True)
class AbsorbedDemoSettings:
    """The demo's imaging protocol (recorded in ``demo.json``)."""

    times_h: tuple[float, ...] = (4.0, 24.0, 96.0, 168.0)
    spacing_mm: float = 4.8
    views: int = 120
    iterations: int = 16
    subsets: int = 4
    counts_at_24h: float = 5.5e6
    truth_histories: int = 2_000_000
    n_lesions: int = 3


def _raw(kinetics: Kinetics, times_h: np.ndarray | float) -> np.ndarray:
    """The unscaled curve: sum of a exp(-ln 2 t / T)."""
    return sum(a * np.exp(-LN2 / half_life * np.asarray(times_h, float)) for a, half_life in kinetics)


def curve(kinetics: Kinetics, times_h: np.ndarray | float) -> np.ndarray:
    """Relative activity of a compartment at ``times_h`` (1 at :data:`PHANTOM_TIME_H`)."""
    return _raw(kinetics, times_h) / _raw(kinetics, PHANTOM_TIME_H)


def integral_h(kinetics: Kinetics) -> float:
    """The time integral 0..inf (h) of :func:`curve`: sum of a T / ln 2, over the curve at 24 h."""
    return float(sum(a * half_life / LN2 for a, half_life in kinetics) / _raw(kinetics, PHANTOM_TIME_H))


def _compartments(labels: np.ndarray) -> dict[str, np.ndarray]:
    masks = {name: np.isin(labels, [LABELS[n] for n in members]) for name, (members, _) in KINETICS.items()}
    covered = np.logical_or.reduce(list(masks.values()))
    if np.any((labels > 0) & ~covered):
        raise ValueError("phantom: a label is in no compartment of KINETICS")
    return masks


def _per_compartment(activity: np.ndarray, masks: dict[str, np.ndarray], factor) -> np.ndarray:
    """``activity`` times ``factor(kinetics)`` of each voxel's compartment."""
    scale = np.zeros(activity.shape, np.float32)
    for name, mask in masks.items():
        scale[mask] = float(factor(KINETICS[name][1]))
    return activity * scale


def activity_at(activity: np.ndarray, masks: dict[str, np.ndarray], time_h: float) -> np.ndarray:
    """The true activity (Bq/mL) at ``time_h``: each compartment's 24 h map times its curve."""
    return _per_compartment(activity, masks, lambda kinetics: curve(kinetics, time_h))


def time_integrated_activity(activity: np.ndarray, masks: dict[str, np.ndarray]) -> np.ndarray:
    """The true time-integrated activity concentration (Bq h/mL), 0..inf."""
    return _per_compartment(activity, masks, integral_h)


def segments(labels: np.ndarray, voxel_ml: float) -> tuple[np.ndarray, dict[int, str]]:
    """The demo's table rows as a labelmap: liver, spleen, each kidney, and every lesion of at least
    :data:`MIN_LESION_ML` on its own (smaller pieces of lesion labels, cut off by the phantom's deformation, are
    left out of the table)."""
    out = np.zeros(labels.shape, np.uint8)
    names = {1: "liver", 2: "spleen", 3: "kidney_right", 4: "kidney_left"}
    out[labels == LABELS["liver"]] = 1
    out[labels == LABELS["spleen"]] = 2
    out[np.isin(labels, [LABELS["kidney_right_cortex"], LABELS["kidney_right_medulla"]])] = 3
    out[np.isin(labels, [LABELS["kidney_left_cortex"], LABELS["kidney_left_medulla"]])] = 4
    lesions, count = ndimage.label(np.isin(labels, [LABELS[n] for n in KINETICS["lesions"][0]]))
    sizes = np.bincount(lesions.ravel(), minlength=count + 1) * voxel_ml
    for index in (i for i in range(1, count + 1) if sizes[i] >= MIN_LESION_ML):
        label = len(names) + 1
        out[lesions == index] = label
        names[label] = f"lesion_{label - 4}"
    return out, names


def _moved(image: sitk.Image, shift: tuple[float, float, float, float], default: float, keep_total: bool):
    """``image`` of a patient lying moved by ``shift`` (x, y, z mm, rotation about z deg) on the table: an
    activity (``keep_total``) by cubic B-spline (linear interpolation would blur the sharp true map), clipped at
    0 with its total kept; a CT linearly (a B-spline would ring at air and bone edges)."""
    transform = sitk.Euler3DTransform()
    transform.SetRotation(0.0, 0.0, math.radians(shift[3]))
    transform.SetTranslation(shift[:3])
    interpolator = sitk.sitkBSpline if keep_total else sitk.sitkLinear
    moved = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), image, transform.GetInverse(), interpolator, default)
    moved.CopyInformation(image)
    return with_total_of(sitk.Maximum(moved, 0.0), image) if keep_total else moved


def _rows(truth, results: dict[str, AbsorbedDose], check: AbsorbedDose, check_truth, seg, names) -> list[dict]:
    rows = []
    for label, name in names.items():
        inside = seg == label
        reference = float(truth[inside].mean())
        row: dict[str, Any] = {"segment": name, "volume_ml": None, "true_Gy": reference}
        for method, result in results.items():
            fitted = next(r for r in result.rows if r["label"] == label)
            row["volume_ml"] = fitted["volume_ml"]
            row[f"{method}_Gy"] = fitted["mean_Gy"]
            row[f"{method}_error_%"] = 100.0 * (fitted["mean_Gy"] / reference - 1.0)
            row[f"{method}_model"] = fitted["model"]
            row[f"{method}_T_eff_h"] = fitted["effective_half_life_h"]
        fitted = next(r for r in check.rows if r["label"] == label)
        check_reference = float(check_truth[inside].mean())
        row["chain_check_error_%"] = 100.0 * (fitted["mean_Gy"] / check_reference - 1.0)
        rows.append(row)
    return rows


def run_absorbed_demo(
    out_dir: str | Path,
    *,
    seed: int = DEMO_SEED,
    settings: AbsorbedDemoSettings | None = None,
    model_name: str = DEFAULT_MODEL,
    models_dir: str | Path | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out_dir`` (see the module docstring); returns the rows, paths and provenance."""
    settings = settings or AbsorbedDemoSettings()
    if len(settings.times_h) > len(SHIFTS):
        raise ValueError(f"times_h: the demo has misalignments for at most {len(SHIFTS)} time points")
    report_progress = progress or no_progress
    started = time.perf_counter()
    device_name = str(resolve_device(device))
    model, card = load_dose_model(model_name, device_name, models_dir)
    report_progress(0.0, "virtual patient")
    phantom = make_torso(torso_grid_size(settings.spacing_mm), settings.spacing_mm, seed=seed, tracer="DOTATATE",
                         n_lesions=settings.n_lesions, total_activity_MBq=4000.0)  # fmt: skip
    labels = array_from_image(phantom.labels)
    masks = _compartments(labels)
    activity24 = array_from_image(phantom.activity).astype(np.float32)

    def as_image(values: np.ndarray, unit: str, quantity: str) -> sitk.Image:
        return set_unit(image_from_array(values.astype(np.float32), phantom.activity), unit, quantity)

    tia = as_image(time_integrated_activity(activity24, masks), "Bq/mL", "time-integrated activity (Bq h/mL)")
    report_progress(0.02, "Monte Carlo of the true time-integrated activity (the truth)")
    truth_rate = compute_dose_rate(tia, phantom.ct, "mc", photon_histories=settings.truth_histories, seed=seed,
                                   device=device_name, progress=sub_progress(report_progress, 0.02, 0.15))  # fmt: skip
    truth = array_from_image(truth_rate.image).astype(np.float64)
    check_truth = array_from_image(compute_dose_rate(tia, phantom.ct, "vdk", device=device_name).image)
    spect_seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(len(settings.times_h))]
    points: dict[str, list[TimePoint]] = {"CNN": [], "VDK": [], "check": []}
    warnings: dict[str, list[str]] = {}
    for index, (time_h, shift) in enumerate(zip(settings.times_h, SHIFTS, strict=False)):
        low, high = 0.15 + 0.6 * index / len(settings.times_h), 0.15 + 0.6 * (index + 1) / len(settings.times_h)
        report_progress(low, f"time point {time_h:g} h: SPECT")
        true_now = as_image(activity_at(activity24, masks, time_h), "Bq/mL", "activity concentration")
        activity = set_unit(_moved(true_now, shift, 0.0, True), "Bq/mL", "activity concentration")
        ct = set_unit(_moved(phantom.ct, shift, -1000.0, False), "HU", "CT number")
        counts = settings.counts_at_24h * float(array_from_image(activity).sum() / activity24.sum())
        spect = spect_at_count_levels(
            activity, ct, (counts,), Acquisition(views=settings.views), iterations=settings.iterations,
            subsets=settings.subsets, seed=spect_seeds[index], device=device_name,
            progress=sub_progress(report_progress, low, high - 0.05 * (high - low)),
        )[0]  # fmt: skip
        spect = set_unit(spect, "Bq/mL", "activity concentration")
        report_progress(high - 0.05 * (high - low), f"time point {time_h:g} h: dose rates")
        cnn = cnn_dose_rate(spect, ct, model, card, counts=counts, device=device_name)
        warnings[f"{time_h:g} h"] = cnn.provenance["warnings"]
        points["CNN"].append(TimePoint(time_h, cnn.image, ct))
        points["VDK"].append(TimePoint(time_h, compute_dose_rate(spect, ct, "vdk", device=device_name).image, ct))
        points["check"].append(TimePoint(time_h, activity, ct))
    seg, names = segments(labels, settings.spacing_mm**3 / 1000.0)
    labelmap = image_from_array(seg, phantom.labels)
    results = {}
    for offset, method in enumerate(("CNN", "VDK", "check")):
        report_progress(0.75 + 0.05 * offset, f"absorbed dose: {method}")
        results[method] = absorbed_dose(points[method], labelmap, names)
    check = results.pop("check")
    rows = _rows(truth, results, check, check_truth, seg, names)
    curves = {method: result.curves for method, result in (*results.items(), ("chain_check", check))}
    report_progress(0.92, "Writing the outputs")
    out_dir = Path(out_dir)
    provenance = {
        "command": "deepdosimetry demo-absorbed",
        "seed": seed,
        "settings": asdict(settings),
        "kinetics": {name: {"labels": list(members), "terms_amplitude_half_life_h": [list(t) for t in terms],
                            "integral_h": integral_h(terms)} for name, (members, terms) in KINETICS.items()},
        "misalignments_x_y_z_mm_rz_deg": [list(s) for s in SHIFTS[: len(settings.times_h)]],
        "phantom": phantom.provenance,
        "truth": "Monte Carlo dose rate of the true time-integrated activity (Gy)",
        "truth_monte_carlo": truth_rate.provenance,
        "model": card["name"],
        "model_sha256": card["weights_sha256"],
        "cnn_warnings": {time: notes for time, notes in warnings.items() if notes},
        "registrations": results["CNN"].registrations,
        "device": device_name,
    }  # fmt: skip
    truth_image = set_unit(image_from_array(truth.astype(np.float32), phantom.activity), ABSORBED_DOSE_UNIT,
                           "absorbed dose")  # fmt: skip
    paths = report.write_report(
        out_dir, truth_image, {method: result.image for method, result in results.items()}, labelmap, names,
        extra_volumes={"CT": phantom.ct, "true activity at 24 h": phantom.activity},
        provenance=provenance,
        title=f"demo-absorbed seed {seed}: {len(settings.times_h)} time points; truth = Monte Carlo of the true "
        "time-integrated activity",
    )  # fmt: skip
    for method, result in results.items():
        paths[f"dose_{method}"] = io.write_image(result.image, out_dir / f"absorbed_dose_{method}.nrrd")
    paths["truth"] = io.write_image(truth_image, out_dir / "absorbed_dose_truth.nrrd")
    paths["table"] = write_csv(rows, out_dir / "absorbed.csv")
    paths["table_md"] = write_markdown(rows, out_dir / "absorbed.md")
    paths["curves"] = plot_time_curves(
        results["CNN"].times_h,
        results["CNN"].curves,
        out_dir / "curves.png",
        legends={row["segment"]: row["model"] for row in results["CNN"].rows},
    )
    axis, histograms = cumulative_histograms(array_from_image(results["CNN"].image), seg, names)
    paths["dvh"] = plot_histograms(axis, histograms, out_dir / "dvh.png", "Gy", "dose-volume histograms (CNN)")
    record = {"rows": rows, "curves_Gy_per_h": curves, "provenance": provenance}
    (out_dir / "demo.json").write_text(json.dumps(record, indent=2) + "\n")
    wall = time.perf_counter() - started
    report_progress(1.0, f"demo done in {wall:.0f} s")
    return {"rows": rows, "paths": paths, "provenance": provenance, "wall_time_s": wall}
