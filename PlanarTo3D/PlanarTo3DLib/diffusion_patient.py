"""One patient through PlanarTo3D's diffusion path: the same inputs as the ResUNet path
(:func:`PlanarTo3DLib.patient.planar_to_3d`), the slice diffusion prior (generic, or fine-tuned on the patient's
PET variations), K samples consistent with the measured planar images, and their mean activity (Bq/mL on the CT
grid), per-voxel standard deviation and per-organ spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.provenance import stamp
from DosimetryCore.physics.ct import body_mask

from .alignment import PlanarAlignment
from .data import DEFAULT_CAMERA, PlanarCamera
from .diffusion import SlicePrior
from .diffusion_sampling import DEFAULT_SAMPLING, SamplingSettings, organ_spread, sample_activity
from .diffusion_train import FINE_TUNE_DEFAULTS, fine_tune_prior
from .patient import fine_tune_patient, measurement_record, onto_ct, organ_rows, patient_on_grid
from .reconstruct import planar_consistency

METHOD = "PlanarTo3D diffusion (DDS sampling of a slice prior with planar consistency)"


@dataclass
class DiffusionResult:
    """What :func:`planar_to_3d_diffusion` made: the mean activity and its standard deviation on the CT grid
    (Bq/mL) and on the network grid, the organ rows (with ``activity_sd_MBq``), the alignment, the planar
    consistency of the mean, the prior used and its fine-tuning summary."""

    activity: sitk.Image
    uncertainty: sitk.Image
    grid_activity: np.ndarray
    grid_std: np.ndarray
    rows: list[dict[str, Any]]
    alignment: PlanarAlignment
    consistency: float
    model: SlicePrior
    fine_tuning: dict[str, Any] | None


def planar_to_3d_diffusion(
    anterior: np.ndarray,
    posterior: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    ct: sitk.Image,
    pet: sitk.Image,
    labels: sitk.Image,
    names: dict[int, str],
    prior: SlicePrior,
    *,
    camera: PlanarCamera = DEFAULT_CAMERA,
    sampling: SamplingSettings = DEFAULT_SAMPLING,
    fine_tune_dir: str | Path | None = None,
    variations: int = FINE_TUNE_DEFAULTS["variations"],
    epochs: int = FINE_TUNE_DEFAULTS["epochs"],
    seed: int = 0,
    model_record: dict[str, Any] | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> DiffusionResult:
    """3D activity of one patient by the diffusion path (see the module docstring). With ``fine_tune_dir`` the
    prior is first fine-tuned there on ``variations`` variations of the patient's PET (resumable). Both output
    images' provenance holds ``model_record``, the sampling settings (steps, eta, samples, seeds, consistency
    step), the camera, the alignment and the planar consistency of the mean."""
    report = progress or no_progress
    patient = patient_on_grid(anterior, posterior, pixel_spacing_mm, ct, pet, labels, camera, names, report)
    counts = patient.alignment.counts
    model, summary = prior, None
    if fine_tune_dir is not None:
        model, summary = fine_tune_patient(prior, patient, fine_tune_dir, variations=variations, epochs=epochs,
                                           seed=seed, camera=camera, device=device, tune=fine_tune_prior,
                                           progress=sub_progress(report, 0.1, 0.6))  # fmt: skip
    start = 0.6 if summary else 0.1
    samples = sample_activity(model, counts, patient.mu, camera=camera, settings=sampling, pet=patient.pet,
                              body=body_mask(patient.hu), device=device,
                              progress=sub_progress(report, start, 0.95))  # fmt: skip
    mean, std = samples.mean, samples.std
    consistency = planar_consistency(mean, patient.mu, counts, camera)
    spread = organ_spread(samples, patient.labels, names)
    rows = [row | {"activity_sd_MBq": spread[row["organ"]]["activity_sd_MBq"]}
            for row in organ_rows(mean, counts, patient.mu, patient.labels, names, camera)]  # fmt: skip
    record = {
        "method": METHOD + (", patient-specific prior" if summary else ", generic prior"),
        **(model_record or {}),
        **sampling.record(),
        "activity_support": "the CT's body (DosimetryCore.physics.ct.body_mask): no activity outside it",
        **measurement_record(camera, patient.alignment, consistency),
    }
    activity = stamp(onto_ct(mean, ct), record | {"image": "mean of the samples"})
    uncertainty = stamp(onto_ct(std, ct, keep_total=False, quantity="activity concentration standard deviation"),
                        record | {"image": "per-voxel standard deviation of the samples"})  # fmt: skip
    report(1.0, "PlanarTo3D diffusion done")
    return DiffusionResult(activity, uncertainty, mean, std, rows, patient.alignment, consistency, model, summary)
