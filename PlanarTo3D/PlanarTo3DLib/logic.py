"""Node-level logic of the PlanarTo3D module: MRML nodes in, nodes out, inputs never changed.

No ``slicer`` import here: nodes are converted through :mod:`DosimetryCore.io.mrml`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from DosimetryCore import io
from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.io import mrml

TABLE_UNITS = {"total_counts": "counts", "frame_duration_s": "s", "count_rate_cps": "counts/s"}


def split_paths(text: str) -> list[str]:
    """File paths from the panel's text field (separated by ';'), blanks dropped."""
    return [part.strip() for part in text.split(";") if part.strip()]


def counts_rows(pair: io.PlanarPair) -> list[dict[str, object]]:
    """One row per view: total counts, frame duration (s), count rate (counts/s), pixel size (mm)."""
    return [
        {
            "view": view.view,
            "total_counts": view.total_counts,
            "frame_duration_s": view.frame_duration_s,
            "count_rate_cps": view.count_rate_cps,
            "pixel_spacing_mm": " x ".join(f"{s:g}" for s in view.image.GetSpacing()),
            "source": view.source,
        }
        for view in (pair.anterior, pair.posterior)
    ]


def import_planar(
    scene,
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    anterior_node=None,
    posterior_node=None,
    table_node=None,
    progress: ProgressCallback | None = None,
):
    """Read an NM planar ANT/POST acquisition into volume nodes and a counts table.

    Each view becomes a one-slice coronal volume (counts), the posterior mirrored into the
    anterior orientation. Given nodes are filled, missing ones added to ``scene``. Returns
    ``(anterior_node, posterior_node, table_node)``. Nothing is written when reading fails.
    """
    progress = progress or no_progress
    progress(0.0, "Reading planar DICOM")
    pair = io.read_planar(paths)
    progress(0.6, "Writing nodes")
    nodes = []
    for view, node in ((pair.anterior, anterior_node), (pair.posterior, posterior_node)):
        volume = io.planar_volume(view.image)
        nodes.append(mrml.volume_into(node, scene, volume, f"Planar {view.view}"))
    rows = counts_rows(pair)
    table_node = mrml.table_into(table_node, scene, rows, "Planar counts", TABLE_UNITS)
    progress(1.0, "Done")
    return nodes[0], nodes[1], table_node


PATIENT_MODEL = "patient-model"
"""The name of a patient model inside its folder."""
ORGAN_TABLE_UNITS = {"volume_ml": "mL", "activity_MBq": "MBq", "mean_Bq_per_mL": "Bq/mL", "conjugate_view_MBq": "MBq",
                     "activity_sd_MBq": "MBq"}  # fmt: skip
DEFAULT_MODELS = {"resunet": "planar3d-resunet", "diffusion": "planar3d-diffusion"}
"""The generic model of each method: the supervised ResUNet and the slice diffusion prior."""


def load_method_model(method: str, name: str | None = None, folder: str | os.PathLike | None = None):
    """``(model, card)`` of ``method`` ("resunet" or "diffusion") named ``name`` (default: the method's generic
    model) from the models ``folder`` (default: the resources' Models); a clear ValueError when none is there."""
    from DosimetryCore.core.resources import models_dir
    from DosimetryCore.learning import models

    if method not in DEFAULT_MODELS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(DEFAULT_MODELS)}")
    name = name or DEFAULT_MODELS[method]
    if method == "diffusion":
        from .diffusion import SlicePrior

        if name not in models.list_models(folder):
            raise ValueError(
                f"model {name!r}: no diffusion prior of that name is installed in {folder or models_dir()}; train "
                f"one with 'deepdosimetry train planar3d-diffusion --out DIR --save-model {name}'"
            )
        return models.load_model(name, SlicePrior.from_config, "cpu", folder)
    from .network import ResUNet3D

    return models.load_model(name, ResUNet3D.from_config, "cpu", folder)


def _patient_inputs(anterior_node, posterior_node, ct_node, pet_node, segmentation_node):
    """Planar counts (rows, columns), pixel spacing, frame duration, CT, PET, organ labels and names from nodes."""
    import numpy as np
    import SimpleITK as sitk

    from DosimetryCore.core.metadata import FRAME_DURATION_KEY

    for node, name in ((anterior_node, "anterior volume"), (posterior_node, "posterior volume"), (ct_node, "CT"),
                       (pet_node, "PET"), (segmentation_node, "segmentation")):  # fmt: skip
        if node is None:
            raise ValueError(f"{name}: select it")
    views = []
    for node in (anterior_node, posterior_node):
        image = mrml.image_from_volume_node(node)
        counts = np.asarray(sitk.GetArrayFromImage(image), np.float32)
        if counts.ndim != 3 or counts.shape[0] != 1:
            raise ValueError(f"planar volume {node.GetName()!r}: expected one coronal slice (an imported planar view)")
        spacing = image.GetSpacing()
        if not image.HasMetaDataKey(FRAME_DURATION_KEY):
            raise ValueError(f"planar volume {node.GetName()!r}: has no frame duration; import it from its DICOM")
        views.append((counts[0], (spacing[0], spacing[1]), float(image.GetMetaData(FRAME_DURATION_KEY))))
    if views[0][0].shape != views[1][0].shape or views[0][1] != views[1][1]:
        raise ValueError("planar volumes: anterior and posterior differ in size or pixel spacing")
    ct = mrml.image_from_volume_node(ct_node)
    pet = mrml.image_from_volume_node(pet_node)
    labels, names = mrml.labelmap_from_segmentation_node(segmentation_node, ct_node)
    return views, ct, pet, labels, names


def reconstruct_volume(
    anterior_node,
    posterior_node,
    ct_node,
    pet_node,
    segmentation_node,
    sensitivity_cps_per_MBq: float,
    *,
    method: str = "resunet",
    model_name: str | None = None,
    models_dir: str | os.PathLike | None = None,
    patient_model_dir: str | os.PathLike | None = None,
    samples: int = 4,
    steps: int = 50,
    seed: int = 0,
    output_volume=None,
    output_table=None,
    output_uncertainty=None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
):
    """3D activity (Bq/mL, on the CT grid) from the planar view nodes with the pre-therapy PET/CT and the organ
    segmentation, by ``method`` ("resunet" or "diffusion"); with ``patient_model_dir`` the patient model trained
    there (:func:`train_patient_model`), else the generic ``model_name`` (default: the method's). Diffusion draws
    ``samples`` samples of ``steps`` DDIM steps (seeds ``seed``, ``seed + 1``, ...): the activity is their mean,
    the uncertainty node their per-voxel standard deviation (Bq/mL) and the table adds each organ's spread
    (``activity_sd_MBq``). Returns ``(activity node, organ table node, uncertainty node or None)``; the table holds
    each organ's activity, mean concentration and the conjugate-view activity beside it. Inputs are never
    changed."""
    from .patient import camera_for

    report = progress or no_progress
    inputs = {"anterior": anterior_node, "posterior": posterior_node, "CT": ct_node, "PET": pet_node}
    mrml.check_output_nodes(inputs, output_volume, output_table)
    mrml.check_output_nodes({**inputs, "activity output": output_volume}, output_uncertainty)
    views, ct, pet, labels, names = _patient_inputs(anterior_node, posterior_node, ct_node, pet_node,
                                                    segmentation_node)  # fmt: skip
    folder, name = (patient_model_dir, PATIENT_MODEL) if patient_model_dir else (models_dir, model_name)
    model, card = load_method_model(method, name, folder)
    camera = camera_for(sensitivity_cps_per_MBq, views[0][2])
    model_record = {"model": card["name"], "model_sha256": card["weights_sha256"]}
    arguments = (views[0][0], views[1][0], views[0][1], ct, pet, labels, names, model)
    scene = ct_node.GetScene()
    base = anterior_node.GetName()
    uncertainty = None
    if method == "diffusion":
        from .diffusion_patient import planar_to_3d_diffusion
        from .diffusion_sampling import SamplingSettings

        sampling = SamplingSettings(steps=steps, samples=samples, seed=seed)
        result = planar_to_3d_diffusion(*arguments, camera=camera, sampling=sampling, model_record=model_record,
                                        device=device, progress=report)  # fmt: skip
        uncertainty = mrml.volume_into(output_uncertainty, scene, result.uncertainty, f"{base} PlanarTo3D SD")
    else:
        from .patient import planar_to_3d

        result = planar_to_3d(*arguments, camera=camera, model_record=model_record, device=device, progress=report)
    output_volume = mrml.volume_into(output_volume, scene, result.activity, f"{base} PlanarTo3D")
    units = {column: unit for column, unit in ORGAN_TABLE_UNITS.items() if column in result.rows[0]}
    output_table = mrml.table_into(output_table, scene, result.rows, "PlanarTo3D organs", units)
    return output_volume, output_table, uncertainty


def train_patient_model(
    anterior_node,
    posterior_node,
    ct_node,
    pet_node,
    segmentation_node,
    folder: str | os.PathLike,
    *,
    method: str = "resunet",
    model_name: str | None = None,
    models_dir: str | os.PathLike | None = None,
    variations: int = 100,
    epochs: int = 4,
    device: str | None = None,
    progress: ProgressCallback | None = None,
):
    """Fine-tune the generic model of ``method`` ("resunet" or "diffusion": the slice prior) on the patient's PET
    variations (measured count level) into ``folder`` (checkpoints there: an interrupted run resumes), and save it
    there as :data:`PATIENT_MODEL` with its card."""
    from DosimetryCore.learning import models

    from .patient import camera_for, fine_tune_patient, patient_card_fields, patient_on_grid
    from .train import fine_tune

    views, ct, pet, labels, _ = _patient_inputs(anterior_node, posterior_node, ct_node, pet_node, segmentation_node)
    generic, card = load_method_model(method, model_name, models_dir)
    camera = camera_for(1.0, views[0][2])  # the variations are scaled to the measured counts: no sensitivity needed
    patient = patient_on_grid(views[0][0], views[1][0], views[0][1], ct, pet, labels, camera)
    tune = fine_tune
    if method == "diffusion":
        from .diffusion_train import fine_tune_prior as tune
    model, summary = fine_tune_patient(generic, patient, folder, variations=variations, epochs=epochs, camera=camera,
                                       device=device, tune=tune, progress=progress)  # fmt: skip
    return models.save_model(model, PATIENT_MODEL, patient_card_fields(card, summary), folder, overwrite=True)
