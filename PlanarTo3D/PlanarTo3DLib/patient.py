"""One patient through PlanarTo3D: planar images, CT, pre-therapy PET and organs in; 3D activity (Bq/mL on the
CT grid), a per-organ table with the conjugate-view estimate beside it, and a figure out.

Steps: CT, PET and organ labels onto the network grid (9.6 mm, centred on the CT; the PET's total kept); the
measured planar images placed on that grid's coronal projection (:mod:`PlanarTo3DLib.alignment`); optionally the
generic model fine-tuned on the patient's PET variations (:func:`PlanarTo3DLib.train.fine_tune`); the
reconstruction tied to the measured counts (:mod:`PlanarTo3DLib.reconstruct`); back onto the CT grid with the
total kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.volume import array_from_image, image_from_array, resample_to, set_unit, with_total_of
from DosimetryCore.imaging.conjugate_view import conjugate_view_activities
from DosimetryCore.io.outputs import atomic_path

from .alignment import PlanarAlignment, align_planar
from .data import DEFAULT_CAMERA, GRID_SHAPE_ZYX, GRID_SPACING_MM, PlanarCamera, mu_map, planar_images
from .network import ResUNet3D
from .reconstruct import planar_consistency, reconstruct
from .train import FINE_TUNE_DEFAULTS, fine_tune


@dataclass
class PlanarResult:
    """What :func:`planar_to_3d` made: the activity on the CT grid and on the network grid, the organ rows,
    the alignment, the planar consistency, the model used (fine-tuned or generic) and its fine-tuning summary."""

    activity: sitk.Image
    grid_activity: np.ndarray
    rows: list[dict[str, Any]]
    alignment: PlanarAlignment
    consistency: float
    model: ResUNet3D
    fine_tuning: dict[str, Any] | None


def network_grid(ct: sitk.Image) -> sitk.Image:
    """The network grid (identity direction, :data:`GRID_SPACING_MM`) centred on the CT's centre."""
    size = [int(n) for n in GRID_SHAPE_ZYX[::-1]]
    centre = np.array(ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2.0 for n in ct.GetSize()]))
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing((GRID_SPACING_MM,) * 3)
    grid.SetOrigin(tuple(centre - (np.array(size) - 1) / 2.0 * GRID_SPACING_MM))
    return grid


def onto_grid(ct: sitk.Image, pet: sitk.Image, labels: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HU, PET (its total kept) and labels on the network grid of ``ct``."""
    grid = network_grid(ct)
    hu = resample_to(sitk.Cast(ct, sitk.sitkFloat32), grid, "linear", default_value=-1000.0)
    pet_grid = with_total_of(resample_to(sitk.Cast(pet, sitk.sitkFloat32), grid, "linear", default_value=0.0), pet)
    label_grid = resample_to(labels, grid, "nearest", default_value=0)
    values = array_from_image(pet_grid)
    if not values.sum() > 0:
        raise ValueError("pet: holds no activity on the CT's field; is it registered to the CT?")
    return array_from_image(hu).astype(np.float32), np.clip(values, 0, None).astype(np.float32), \
        array_from_image(label_grid).astype(np.int32)  # fmt: skip


@dataclass
class PatientGrid:
    """A patient on the network grid: HU, PET, organ labels and attenuation (1/cm), all (z, y, x), and the
    measured planar images placed on the grid's projection."""

    hu: np.ndarray
    pet: np.ndarray
    labels: np.ndarray
    mu: np.ndarray
    alignment: PlanarAlignment


def patient_on_grid(
    anterior: np.ndarray,
    posterior: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    ct: sitk.Image,
    pet: sitk.Image,
    labels: sitk.Image,
    camera: PlanarCamera = DEFAULT_CAMERA,
    names: dict[int, str] | None = None,
    progress: ProgressCallback | None = None,
) -> PatientGrid:
    """CT, PET and organs onto the network grid (:func:`onto_grid`), and the measured planar images placed on its
    projection (:func:`PlanarTo3DLib.alignment.align_planar`); every organ of ``names`` must lie on the field."""
    report = progress or no_progress
    report(0.0, "CT, PET and organs onto the network grid")
    hu, pet_grid, label_grid = onto_grid(ct, pet, labels)
    mu = mu_map(hu, camera)
    for label, name in (names or {}).items():
        if not np.any(label_grid == label):
            raise ValueError(f"segmentation: organ {name!r} (label {label}) has no voxel on the CT's field")
    report(0.05, "placing the planar images on the CT's projection grid")
    alignment = align_planar(anterior, posterior, pixel_spacing_mm, planar_images(pet_grid, mu, camera),
                             GRID_SPACING_MM)  # fmt: skip
    return PatientGrid(hu, pet_grid, label_grid, mu, alignment)


def fine_tune_patient(
    generic: Any, patient: PatientGrid, folder: str | Path, *, camera: PlanarCamera = DEFAULT_CAMERA,
    tune: Callable[..., tuple[Any, dict[str, Any]]] = fine_tune, **settings: Any,
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """``tune`` (:func:`PlanarTo3DLib.train.fine_tune` for the ResUNet, or
    :func:`PlanarTo3DLib.diffusion_train.fine_tune_prior` for the diffusion prior) on the patient's PET variations
    at its measured count level, into ``folder`` (resumed when it holds a checkpoint); ``settings``: variations,
    epochs, seed, device, progress."""
    return tune(generic, patient.pet, patient.hu, patient.labels, float(patient.alignment.counts.sum()), folder,
                camera=camera, resume=(Path(folder) / "latest.pt").exists(), **settings)  # fmt: skip


def planar_to_3d(
    anterior: np.ndarray,
    posterior: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    ct: sitk.Image,
    pet: sitk.Image,
    labels: sitk.Image,
    names: dict[int, str],
    generic: ResUNet3D,
    *,
    camera: PlanarCamera = DEFAULT_CAMERA,
    fine_tune_dir: str | Path | None = None,
    variations: int = FINE_TUNE_DEFAULTS["variations"],
    epochs: int = FINE_TUNE_DEFAULTS["epochs"],
    seed: int = 0,
    model_record: dict[str, Any] | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> PlanarResult:
    """3D activity of one patient (see the module docstring). With ``fine_tune_dir`` the generic model is first
    fine-tuned there on ``variations`` variations of the patient's PET (checkpoints there; resumable). The
    activity's provenance holds ``model_record`` (which model), the camera, the alignment and the planar
    consistency."""
    report = progress or no_progress
    patient = patient_on_grid(anterior, posterior, pixel_spacing_mm, ct, pet, labels, camera, names, report)
    alignment = patient.alignment
    model, summary = generic, None
    if fine_tune_dir is not None:
        model, summary = fine_tune_patient(generic, patient, fine_tune_dir, variations=variations, epochs=epochs,
                                           seed=seed, camera=camera, device=device,
                                           progress=sub_progress(report, 0.1, 0.9))  # fmt: skip
    report(0.9, "reconstructing")
    condition = patient.pet if model.pet_conditioning else None
    activity = reconstruct(model, alignment.counts, patient.mu, condition, camera=camera, device=device)
    consistency = planar_consistency(activity, patient.mu, alignment.counts, camera)
    rows = organ_rows(activity, alignment.counts, patient.mu, patient.labels, names, camera)
    back = onto_ct(activity, ct)
    stamp(back, {
        "method": "PlanarTo3D ResUNet (Lopez-Montes et al.)" + (", patient-specific" if summary else ""),
        **(model_record or {}), **measurement_record(camera, alignment, consistency),
    })  # fmt: skip
    report(1.0, "PlanarTo3D done")
    return PlanarResult(back, activity, rows, alignment, consistency, model, summary)


def onto_ct(values: np.ndarray, ct: sitk.Image, *, keep_total: bool = True,
            quantity: str = "activity concentration") -> sitk.Image:  # fmt: skip
    """Values in Bq/mL on the network grid of ``ct`` (z, y, x) resampled onto the CT grid, their total kept unless
    ``keep_total`` is false (a standard deviation map)."""
    on_grid = set_unit(image_from_array(values, network_grid(ct)), "Bq/mL", quantity)
    back = resample_to(on_grid, ct, "linear", default_value=0.0)
    return set_unit(with_total_of(back, on_grid) if keep_total else back, "Bq/mL", quantity)


def measurement_record(camera: PlanarCamera, alignment: PlanarAlignment, consistency: float) -> dict[str, Any]:
    """The provenance every PlanarTo3D output shares: the camera, the placing of the planar images, the planar
    consistency and how the total is tied to the counts."""
    return {
        "camera": {"sensitivity_cps_per_MBq": camera.sensitivity_cps_per_MBq, "frame_duration_s": camera.time_s,
                   "collimator": camera.collimator},
        "alignment": {"translation_mm": list(alignment.translation_mm), "rotation_deg": alignment.rotation_deg,
                      "correlation_before": alignment.correlation_before,
                      "correlation_after": alignment.correlation_after},
        "planar_consistency": consistency,
        "total": "scaled so that the projection has the measured anterior + posterior counts",
    }  # fmt: skip


def organ_rows(
    activity: np.ndarray, counts: np.ndarray, mu: np.ndarray, labels: np.ndarray, names: dict[int, str],
    camera: PlanarCamera = DEFAULT_CAMERA,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per organ: volume (mL), activity (MBq) and mean concentration (Bq/mL) of the reconstruction, and the
    conjugate-view activity (MBq) from the same planar images."""
    voxel_ml = GRID_SPACING_MM**3 / 1000.0
    conjugate = {row["label"]: row for row in conjugate_view_activities(
        counts[0], counts[1], mu, labels, names, (GRID_SPACING_MM,) * 3,
        sensitivity_cps_per_MBq=camera.sensitivity_cps_per_MBq, time_s=camera.time_s)}  # fmt: skip
    rows = []
    for label, name in names.items():
        inside = labels == label
        rows.append({
            "organ": name, "volume_ml": float(inside.sum() * voxel_ml),
            "activity_MBq": float(activity[inside].sum() * voxel_ml * 1e-6),
            "mean_Bq_per_mL": float(activity[inside].mean()),
            "conjugate_view_MBq": conjugate[label]["activity_MBq"],
        })  # fmt: skip
    return rows


def camera_for(sensitivity_cps_per_MBq: float, frame_duration_s: float, collimator: str | None = None) -> PlanarCamera:
    """The camera of a measurement: its planar sensitivity (one head) and frame duration."""
    if not (sensitivity_cps_per_MBq > 0 and frame_duration_s > 0):
        raise ValueError("camera: the planar sensitivity (cps/MBq) and the frame duration (s) must be positive")
    camera = replace(DEFAULT_CAMERA, sensitivity_cps_per_MBq=sensitivity_cps_per_MBq, time_s=frame_duration_s)
    return replace(camera, collimator=collimator) if collimator else camera


def write_figure(result: PlanarResult, measured: np.ndarray, path: str | Path) -> Path:
    """Maximum-intensity projections of the reconstruction at 0 and 90 degrees beside the measured anterior and
    posterior images (as Lopez-Montes et al.'s Fig. 2)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 5), dpi=100)
    FigureCanvasAgg(figure)
    panels = [
        ("measured anterior (counts)", measured[0]),
        ("measured posterior (counts)", measured[1]),
        ("MIP 0 deg (Bq/mL)", result.grid_activity.max(axis=1)),
        ("MIP 90 deg (Bq/mL)", result.grid_activity.max(axis=2)),
    ]
    for index, (title, image) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, 4, index)
        axes.imshow(image[::-1], cmap="gray_r", aspect="equal")
        axes.set_title(title, fontsize=9)
        axes.set_axis_off()
    figure.suptitle(f"PlanarTo3D: planar consistency {100 * result.consistency:.1f} %", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return path


def patient_card_fields(generic_card: dict[str, Any], fine_tuning: dict[str, Any]) -> dict[str, Any]:
    """The card of a patient model: the generic model's, with its fine-tuning and where it came from."""
    fields = {k: v for k, v in generic_card.items() if k not in ("name", "weights_file", "weights_sha256", "format")}
    source = {"generic_model": generic_card["name"], "generic_model_sha256": generic_card["weights_sha256"]}
    return fields | {"method": fine_tuning["method"], "fine_tuning": fine_tuning, "metrics": {}, "baselines": {},
                     "fine_tuned_from": source}  # fmt: skip
