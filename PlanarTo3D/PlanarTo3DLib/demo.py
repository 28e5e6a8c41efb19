"""``deepdosimetry demo-planar``: one virtual patient through PlanarTo3D, in a few minutes.

A post-therapy 177Lu truth (the project's torso phantom), a pre-therapy PET unlike it (organ uptakes x
U(0.6, 1.6), 6 mm blur, another total), and the patient's anterior/posterior images of the truth written as NM
DICOM with 4.8 mm pixels and a shifted patient; then the same path as ``planar-to-3d``: placed on the CT's
projection grid, the generic model, and a patient model fine-tuned on a small set of PET variations. Written to
the output folder: the inputs (``inputs/``: planar DICOM, CT, PET, organs), both activities, ``organs.csv``
(truth, generic, patient-specific and conjugate view per organ), ``metrics.csv`` (MAE, SSIM, organ errors,
planar consistency), ``mip.png`` and ``demo.json`` (provenance).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from DosimetryCore import io
from DosimetryCore.core.metadata import LABEL_NAMES_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.volume import array_from_image, image_from_array, set_unit
from DosimetryCore.io.tables import write_csv
from DosimetryCore.learning import models

from .data import DEFAULT_CAMERA, GRID_SPACING_MM, mu_map, planar_images, pre_therapy_pet
from .datasets import virtual_patient
from .evaluation import image_row, organ_activities_MBq, organ_errors, organ_labelmap
from .network import ResUNet3D
from .patient import planar_to_3d, write_figure

DEMO_SEED = 0
CAMERA_PIXEL_MM = 4.8
PATIENT_SHIFT_MM = (9.0, -14.0)
"""Where the patient lies on the camera's images relative to the CT's centre (column, row mm)."""


def camera_images(planar: np.ndarray, seed: int) -> list[np.ndarray]:
    """The grid's expected projections as the camera records them: 4.8 mm pixels, head at row 0, the patient
    shifted by :data:`PATIENT_SHIFT_MM`, Poisson counts."""
    rng = np.random.default_rng(seed)
    views = []
    for view in planar:
        image = sitk.GetImageFromArray(np.ascontiguousarray(view[::-1]) / GRID_SPACING_MM**2)
        image.SetSpacing((GRID_SPACING_MM,) * 2)
        image.SetOrigin(tuple(-(n - 1) / 2 * GRID_SPACING_MM for n in image.GetSize()))
        size = [int(round(n * GRID_SPACING_MM / CAMERA_PIXEL_MM)) + 8 for n in image.GetSize()]
        camera = sitk.Image(size, sitk.sitkFloat32)
        camera.SetSpacing((CAMERA_PIXEL_MM,) * 2)
        camera.SetOrigin(tuple(-(n - 1) / 2 * CAMERA_PIXEL_MM for n in size))
        moved = sitk.Resample(image, camera, sitk.TranslationTransform(2, PATIENT_SHIFT_MM), sitk.sitkLinear, 0.0)
        views.append(rng.poisson(sitk.GetArrayFromImage(moved) * CAMERA_PIXEL_MM**2))
    return views


def run_planar_demo(
    out_dir: str | Path,
    *,
    seed: int = DEMO_SEED,
    model_name: str = "planar3d-resunet",
    models_dir: str | Path | None = None,
    variations: int = 20,
    epochs: int = 2,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out_dir``; returns the metric rows, organ rows, paths and provenance."""
    report = progress or no_progress
    started = time.perf_counter()
    out_dir = Path(out_dir)
    generic, card = models.load_model(model_name, ResUNet3D.from_config, "cpu", models_dir)
    report(0.0, "virtual patient, its PET and its planar images")
    patient = virtual_patient(seed)
    truth, hu, labels = patient["activity"], patient["hu"], patient["labels"]
    rng = np.random.default_rng(seed + 7)
    pet, pet_record = pre_therapy_pet(truth, labels, rng)
    anterior, posterior = camera_images(planar_images(truth, mu_map(hu)), int(rng.integers(2**31)))
    organs, names = organ_labelmap(labels)
    spacing = (GRID_SPACING_MM,) * 3
    seg = image_from_array(organs, spacing=spacing)
    seg.SetMetaData(LABEL_NAMES_KEY, json.dumps({str(k): v for k, v in names.items()}))
    ct = set_unit(image_from_array(hu, spacing=spacing), "HU", "CT number")
    pet_image = set_unit(image_from_array(pet, spacing=spacing), "Bq/mL", "activity concentration")
    inputs = out_dir / "inputs"
    paths = {
        "planar": io.write_planar_dicom(anterior, posterior, inputs / "planar.dcm", (CAMERA_PIXEL_MM,) * 2,
                                        DEFAULT_CAMERA.time_s),  # fmt: skip
        "ct": io.write_image(ct, inputs / "ct.nrrd"),
        "pet": io.write_image(pet_image, inputs / "pet.nrrd"),
        "organs": io.write_image(seg, inputs / "organs.nrrd"),
        "truth": io.write_image(set_unit(image_from_array(truth, spacing=spacing), "Bq/mL"), inputs / "truth.nrrd"),
    }
    pair = io.read_planar(paths["planar"])
    measured = [array_from_image(view.image).astype(np.float32) for view in (pair.anterior, pair.posterior)]
    common = (measured[0], measured[1], pair.anterior.image.GetSpacing(), ct, pet_image, seg, names)
    report(0.05, "generic model")
    generic_result = planar_to_3d(*common, generic)
    specific = planar_to_3d(*common, generic, fine_tune_dir=out_dir / "patient-model", variations=variations,
                            epochs=epochs, seed=seed, device=device,
                            progress=sub_progress(report, 0.1, 0.95))  # fmt: skip
    body = hu > -500
    true_MBq = organ_activities_MBq(truth, organs, names)
    metrics, organ_rows = [], []
    results = {"ResUNet generic": generic_result, "ResUNet patient-specific": specific}
    per_method = {method: organ_activities_MBq(r.grid_activity, organs, names) for method, r in results.items()}
    for method, result in results.items():
        metrics.append({"method": method, **image_row(result.grid_activity, truth, body),
                        **organ_errors(per_method[method], true_MBq),
                        "planar_consistency": result.consistency})  # fmt: skip
    conjugate = {row["organ"]: row["conjugate_view_MBq"] for row in specific.rows}
    metrics.append({"method": "conjugate view", **organ_errors(conjugate, true_MBq)})
    for organ, true in true_MBq.items():
        organ_rows.append({"organ": organ, "true_MBq": true,
                           **{f"{method}_MBq": values[organ] for method, values in per_method.items()},
                           "conjugate_view_MBq": conjugate[organ]})  # fmt: skip
    paths["generic"] = io.write_image(generic_result.activity, out_dir / "activity_generic.nrrd")
    paths["patient_specific"] = io.write_image(specific.activity, out_dir / "activity_patient_specific.nrrd")
    paths["metrics"] = write_csv(metrics, out_dir / "metrics.csv")
    paths["organs_table"] = write_csv(organ_rows, out_dir / "organs.csv")
    paths["figure"] = write_figure(specific, specific.alignment.counts, out_dir / "mip.png")
    provenance = {
        "command": "deepdosimetry demo-planar", "seed": seed, "tracer": patient["tracer"],
        "pre_therapy_pet": pet_record, "camera": asdict(DEFAULT_CAMERA),
        "patient_shift_mm": list(PATIENT_SHIFT_MM), "model": card["name"], "model_sha256": card["weights_sha256"],
        "fine_tuning": {"variations": variations, "epochs": epochs},
        "alignment_correlation": specific.alignment.correlation_after,
    }  # fmt: skip
    (out_dir / "demo.json").write_text(json.dumps({"metrics": metrics, "organs": organ_rows,
                                                   "provenance": provenance}, indent=2) + "\n")  # fmt: skip
    wall = time.perf_counter() - started
    report(1.0, f"demo done in {wall:.0f} s")
    return {"metrics": metrics, "organs": organ_rows, "paths": paths, "provenance": provenance, "wall_time_s": wall}
