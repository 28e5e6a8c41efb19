"""PlanarTo3DLib.logic on real MRML: the panel's two steps, "Train patient model" and "Reconstruct"."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from DosimetryCore import io
from DosimetryCore.io import mrml
from DosimetryCore.learning import models
from PlanarTo3DLib import logic


def _nodes(scene, files):
    anterior, posterior, _ = logic.import_planar(scene, [str(files["planar"])])
    ct = mrml.add_volume_node(scene, io.read_image(files["ct"]), "CT")
    pet = mrml.add_volume_node(scene, io.read_image(files["pet"]), "PET")
    labels = io.read_image(files["seg"])
    from DosimetryCore.io.labels import label_names

    seg = mrml.add_segmentation_node(scene, labels, label_names(labels), "organs")
    return anterior, posterior, ct, pet, seg


def test_train_patient_model_then_reconstruct(scene, case, tmp_path):
    folder, files, patient = case
    anterior, posterior, ct, pet, seg = _nodes(scene, files)
    before = slicer.util.arrayFromVolume(pet).copy()
    model_folder = logic.train_patient_model(anterior, posterior, ct, pet, seg, tmp_path / "patient",
                                             model_name="planar3d-test", models_dir=folder / "models",
                                             variations=2, epochs=1)  # fmt: skip
    card = models.read_card(logic.PATIENT_MODEL, tmp_path / "patient")
    assert model_folder.name == logic.PATIENT_MODEL and card["fine_tuned_from"]["generic_model"] == "planar3d-test"
    volume, table, uncertainty = logic.reconstruct_volume(anterior, posterior, ct, pet, seg, 9.5,
                                                          patient_model_dir=tmp_path / "patient")  # fmt: skip
    assert uncertainty is None
    activity = slicer.util.arrayFromVolume(volume)
    assert activity.shape == slicer.util.arrayFromVolume(ct).shape and activity.min() >= 0 and activity.sum() > 0
    rows = mrml.rows_from_table_node(table)
    assert {row["organ"] for row in rows} == {"liver", "spleen", "kidney_left", "kidney_right"}
    assert all(row["conjugate_view_MBq"] > 0 for row in rows)
    assert volume.GetAttribute(mrml.UNIT_ATTRIBUTE) == "Bq/mL"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(pet), before)


def test_bad_planar_and_missing_inputs_are_refused(scene, case):
    folder, files, patient = case
    anterior, posterior, ct, pet, seg = _nodes(scene, files)
    with pytest.raises(ValueError, match="PET: select it"):
        logic.reconstruct_volume(anterior, posterior, ct, None, seg, 9.5, model_name="planar3d-test",
                                 models_dir=folder / "models")  # fmt: skip
    negative = mrml.add_volume_node(scene, mrml.image_from_volume_node(anterior) * -1.0, "negative")
    negative.SetAttribute("DeepDosimetry.Frame_duration_s", "600")
    with pytest.raises(ValueError, match="counts must be finite, >= 0"):
        logic.reconstruct_volume(negative, posterior, ct, pet, seg, 9.5, model_name="planar3d-test",
                                 models_dir=folder / "models")  # fmt: skip
    no_duration = mrml.add_volume_node(scene, mrml.image_from_volume_node(anterior), "no duration")
    no_duration.RemoveAttribute("DeepDosimetry.Frame_duration_s")
    with pytest.raises(ValueError, match="has no frame duration"):
        logic.reconstruct_volume(no_duration, posterior, ct, pet, seg, 9.5, model_name="planar3d-test",
                                 models_dir=folder / "models")  # fmt: skip
    with pytest.raises(ValueError, match="sensitivity"):
        logic.reconstruct_volume(anterior, posterior, ct, pet, seg, 0.0, model_name="planar3d-test",
                                 models_dir=folder / "models")  # fmt: skip
