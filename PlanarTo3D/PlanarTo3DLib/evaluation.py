"""Held-out evaluation of PlanarTo3D (``evaluate-planar``): generic and patient-specific ResUNet (and, given a slice
diffusion prior, generic and patient-specific diffusion: the mean of its samples) against the conjugate-view
method, on virtual patients whose pre-therapy PET differs from their post-therapy truth.

Per held-out virtual patient (seeds not used in training): the post-therapy 177Lu truth (the project's torso
phantom), a pre-therapy PET unlike it (:func:`PlanarTo3DLib.data.pre_therapy_pet`), the measured anterior and
posterior images of the truth (Poisson noise at the camera's count level). Metrics (the project's metric
functions):

- ``mae_norm``: mean |estimate - truth| inside the body over the truth's mean inside the body (the paper's MAE is
  of normalised images; this normalisation is ours, stated);
- ``ssim``: 3D SSIM inside the body with data range = the truth's maximum;
- ``organ_error_<organ>_%``: (estimated - true) organ activity / true, for liver, spleen and each kidney;
  ``organ_abs_error_%``: their mean absolute value;
- ``planar_consistency``: relative L2 difference of the estimate's projections from the measured images.

Conjugate view gives organ activities only (MIRD 16 with Buijs background subtraction,
:mod:`DosimetryCore.imaging.conjugate_view`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.evaluation.metrics import ssim
from DosimetryCore.imaging.conjugate_view import conjugate_view_activities
from DosimetryCore.phantoms import LABELS
from DosimetryCore.physics.ct import body_mask

from .data import DEFAULT_CAMERA, GRID_SPACING_MM, PlanarCamera, mu_map, planar_images, pre_therapy_pet
from .datasets import virtual_patient
from .diffusion import SlicePrior
from .diffusion_sampling import DEFAULT_SAMPLING, SamplingSettings, sample_activity
from .diffusion_train import fine_tune_prior
from .network import ResUNet3D
from .reconstruct import planar_consistency, reconstruct
from .train import FINE_TUNE_DEFAULTS, fine_tune

ORGANS = {
    "liver": ("liver",),
    "spleen": ("spleen",),
    "kidney_left": ("kidney_left_cortex", "kidney_left_medulla"),
    "kidney_right": ("kidney_right_cortex", "kidney_right_medulla"),
}
"""The organs whose activities are compared, as groups of phantom labels."""


def organ_labelmap(labels: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """The :data:`ORGANS` as a labelmap 1..4 and their names."""
    out = np.zeros(labels.shape, np.uint8)
    names = {}
    for index, (organ, members) in enumerate(ORGANS.items(), start=1):
        out[np.isin(labels, [LABELS[m] for m in members])] = index
        names[index] = organ
    return out, names


def organ_activities_MBq(activity: np.ndarray, organs: np.ndarray, names: dict[int, str]) -> dict[str, float]:
    """Each organ's activity (MBq) in an activity map (Bq/mL) on the network grid."""
    voxel_ml = GRID_SPACING_MM**3 / 1000.0
    return {name: float(activity[organs == label].sum()) * voxel_ml * 1e-6 for label, name in names.items()}


def organ_errors(estimated: dict[str, float], true: dict[str, float]) -> dict[str, float]:
    """``organ_error_<organ>_%`` of each organ and their mean absolute value ``organ_abs_error_%``."""
    errors = {f"organ_error_{organ}_%": 100.0 * (estimated[organ] / true[organ] - 1.0) for organ in true}
    errors["organ_abs_error_%"] = float(np.mean(np.abs(list(errors.values()))))
    return errors


def conjugate_view_errors(
    measured: np.ndarray,
    mu: np.ndarray,
    organs: np.ndarray,
    names: dict[int, str],
    true_MBq: dict[str, float],
    camera: PlanarCamera = DEFAULT_CAMERA,
) -> dict[str, float]:
    """:func:`organ_errors` of the conjugate-view organ activities of the counts ``measured`` (2, z, x) with the
    attenuation ``mu`` (1/cm) on the network grid."""
    conjugate = conjugate_view_activities(measured[0], measured[1], mu, organs, names, (GRID_SPACING_MM,) * 3,
                                          sensitivity_cps_per_MBq=camera.sensitivity_cps_per_MBq,
                                          time_s=camera.time_s)  # fmt: skip
    return organ_errors({row["organ"]: row["activity_MBq"] for row in conjugate}, true_MBq)


def held_out_case(seed: int, camera: PlanarCamera = DEFAULT_CAMERA) -> dict:
    """A held-out virtual patient as the evaluation sees it: :func:`PlanarTo3DLib.datasets.virtual_patient`
    (``activity`` Bq/mL, ``hu``, ``labels``, ``tracer``) plus its pre-therapy ``pet``, attenuation ``mu`` (1/cm)
    and noisy ``measured`` planar counts (2, z, x), all drawn from ``seed``."""
    patient = dict(virtual_patient(seed))
    rng = np.random.default_rng(seed + 7)
    patient["pet"], _ = pre_therapy_pet(patient["activity"], patient["labels"], rng)
    patient["mu"] = mu_map(patient["hu"], camera)
    patient["measured"] = planar_images(patient["activity"], patient["mu"], camera, seed=int(rng.integers(2**31)))
    return patient


def image_row(estimate: np.ndarray, truth: np.ndarray, body: np.ndarray) -> dict[str, float]:
    """``mae_norm`` and ``ssim`` of an activity estimate (see the module docstring)."""
    scale = float(truth[body].mean())
    return {
        "mae_norm": float(np.abs(estimate - truth)[body].mean() / scale),
        "ssim": ssim(estimate, truth, data_range=float(truth.max()), mask=body),
    }


def evaluate_patient(
    seed: int,
    generic: ResUNet3D,
    *,
    camera: PlanarCamera = DEFAULT_CAMERA,
    variations: int = FINE_TUNE_DEFAULTS["variations"],
    epochs: int = FINE_TUNE_DEFAULTS["epochs"],
    prior: SlicePrior | None = None,
    sampling: SamplingSettings = DEFAULT_SAMPLING,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> list[dict[str, Any]]:
    """The rows (one per method) of one held-out virtual patient; with ``prior`` also the generic and the
    patient-specific (fine-tuned with the same ``variations`` and ``epochs``) diffusion rows, each the mean of
    ``sampling.samples`` samples, its wall time including the fine-tuning."""
    report = progress or no_progress
    patient = held_out_case(seed, camera)
    keys = ("activity", "hu", "labels", "pet", "mu", "measured")
    truth, hu, labels, pet, mu, measured = (patient[key] for key in keys)
    body = hu > -500
    organs, names = organ_labelmap(labels)
    true_MBq = organ_activities_MBq(truth, organs, names)
    rows = []
    report(0.0, "generic ResUNet")
    started = time.perf_counter()
    condition = pet if generic.pet_conditioning else None
    estimates = {"ResUNet generic": reconstruct(generic, measured, mu, condition, camera=camera, device=device)}
    times = {"ResUNet generic": time.perf_counter() - started}
    with tempfile.TemporaryDirectory(prefix="planar3d-finetune-") as folder:
        started = time.perf_counter()
        specific, _ = fine_tune(generic, pet, hu, labels, float(measured.sum()), folder, variations=variations,
                                epochs=epochs, seed=seed, camera=camera, device=device,
                                progress=sub_progress(report, 0.05, 0.5 if prior is not None else 0.95))  # fmt: skip
        estimates["ResUNet patient-specific"] = reconstruct(specific, measured, mu, condition, camera=camera,
                                                            device=device)  # fmt: skip
        times["ResUNet patient-specific"] = time.perf_counter() - started
    if prior is not None:
        estimates |= _diffusion_estimates(prior, pet, hu, labels, measured, mu, seed, variations, epochs, sampling,
                                          camera, device, times, sub_progress(report, 0.5, 0.95))  # fmt: skip
    for method, estimate in estimates.items():
        rows.append({
            "patient_seed": seed, "tracer": patient["tracer"], "method": method, **image_row(estimate, truth, body),
            **organ_errors(organ_activities_MBq(estimate, organs, names), true_MBq),
            "planar_consistency": planar_consistency(estimate, mu, measured, camera), "wall_time_s": times[method],
        })  # fmt: skip
    rows.append({
        "patient_seed": seed, "tracer": patient["tracer"], "method": "conjugate view", "mae_norm": float("nan"),
        "ssim": float("nan"), **conjugate_view_errors(measured, mu, organs, names, true_MBq, camera),
        "planar_consistency": float("nan"), "wall_time_s": 0.0,
    })  # fmt: skip
    report(1.0, f"patient {seed} done")
    return rows


def _diffusion_estimates(
    prior: SlicePrior, pet, hu, labels, measured, mu, seed: int, variations: int, epochs: int,
    sampling: SamplingSettings, camera: PlanarCamera, device: str | None, times: dict[str, float],
    progress: ProgressCallback,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The generic and the patient-specific diffusion estimates (means of the samples); their wall times go into
    ``times``."""
    estimates = {}
    started = time.perf_counter()
    body = body_mask(hu)
    estimates["diffusion generic"] = sample_activity(
        prior, measured, mu, camera=camera, settings=sampling, pet=pet, body=body, device=device,
        progress=sub_progress(progress, 0.0, 0.3),
    ).mean  # fmt: skip
    times["diffusion generic"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="planar3d-diffusion-") as folder:
        started = time.perf_counter()
        specific, _ = fine_tune_prior(prior, pet, hu, labels, float(measured.sum()), folder, variations=variations,
                                      epochs=epochs, seed=seed, camera=camera, device=device,
                                      progress=sub_progress(progress, 0.3, 0.7))  # fmt: skip
        estimates["diffusion patient-specific"] = sample_activity(
            specific, measured, mu, camera=camera, settings=sampling, pet=pet, body=body, device=device,
            progress=sub_progress(progress, 0.7, 1.0),
        ).mean  # fmt: skip
        times["diffusion patient-specific"] = time.perf_counter() - started
    return estimates


def evaluate_planar(
    seeds: Sequence[int],
    generic: ResUNet3D,
    *,
    variations: int = FINE_TUNE_DEFAULTS["variations"],
    epochs: int = FINE_TUNE_DEFAULTS["epochs"],
    prior: SlicePrior | None = None,
    sampling: SamplingSettings = DEFAULT_SAMPLING,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of every held-out patient and the per-method means (diffusion rows when ``prior`` is given)."""
    report = progress or no_progress
    rows: list[dict[str, Any]] = []
    for index, seed in enumerate(seeds):
        part = sub_progress(report, index / len(seeds), (index + 1) / len(seeds))
        rows += evaluate_patient(seed, generic, variations=variations, epochs=epochs, prior=prior, sampling=sampling,
                                 device=device, progress=part)  # fmt: skip
    means = []
    for method in dict.fromkeys(row["method"] for row in rows):
        mine = [row for row in rows if row["method"] == method]
        keys = [k for k, v in mine[0].items() if isinstance(v, float)]
        values = {k: [row[k] for row in mine] for k in keys}
        averaged = {k: float(np.mean(v)) if np.all(np.isfinite(v)) else float("nan") for k, v in values.items()}
        means.append({"method": method, "patients": len(mine), **averaged})
    return rows, means


def held_out_seeds(n: int, seed: int = 2000) -> list[int]:
    """Seeds of held-out virtual patients (children of ``seed``, never a population seed's children)."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(n)]
