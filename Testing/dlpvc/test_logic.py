"""DLPVCLib.logic on real MRML (slicer-core): correct a SPECT volume node, write the corrected volume and table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from dlpvc.cases import save_tiny_model, sphere_case

from DLPVCLib import correction, logic
from DosimetryCore.core.progress import Cancelled
from DosimetryCore.core.volume import image_from_array
from DosimetryCore.io import mrml


@pytest.fixture
def case(scene):
    """(scene, SPECT node: a blurred sphere in Bq/mL, segmentation node with the sphere, sphere mask)."""
    image, labelmap, sphere = sphere_case(fwhm_mm=12.0)
    spect = mrml.add_volume_node(scene, image, "SPECT")
    segmentation = mrml.add_segmentation_node(scene, labelmap, {1: "sphere"}, "organs")
    return scene, spect, segmentation, sphere


def _node_count(scene) -> int:
    """Volume, table and segmentation nodes in the scene (the nodes the logic could write)."""
    classes = ("vtkMRMLVolumeNode", "vtkMRMLTableNode", "vtkMRMLSegmentationNode")
    return sum(scene.GetNodesByClass(name).GetNumberOfItems() for name in classes)


def _segments(segmentation, spect) -> np.ndarray:
    return sitk.GetArrayFromImage(logic.segment_labelmap(segmentation, spect)[0])


def test_iy_writes_the_corrected_volume_and_the_before_after_table(case):
    scene, spect, segmentation, sphere = case
    before, segments_before = slicer.util.arrayFromVolume(spect).copy(), _segments(segmentation, spect)
    reports = []
    volume, table = logic.correct_volume(
        spect, "iy", segmentation, fwhm_mm=(12.0,) * 3, progress=lambda f, m: reports.append(f)
    )
    assert volume.GetName() == "SPECT IY-PVC" and volume.GetAttribute(mrml.UNIT_ATTRIBUTE) == "Bq/mL"
    assert slicer.util.arrayFromVolume(volume)[sphere].mean() == pytest.approx(1000.0, rel=0.02)
    (row,) = mrml.rows_from_table_node(table)
    assert list(row) == ["segment", *correction.TABLE_UNITS]
    assert row["segment"] == "sphere"
    assert row["volume_ml"] == pytest.approx(sphere.sum() * 0.064)
    assert row["mean_before_Bq_per_mL"] == pytest.approx(before[sphere].mean(), rel=1e-6)
    assert row["mean_after_Bq_per_mL"] == pytest.approx(1000.0, rel=0.02)
    assert row["activity_before_MBq"] < row["activity_after_MBq"]
    assert table.GetColumnUnitLabel("mean_after_Bq_per_mL") == "Bq/mL"
    assert reports[0] == 0.0 and reports[-1] == 1.0
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(spect), before)
    np.testing.assert_array_equal(_segments(segmentation, spect), segments_before)


def test_chosen_output_nodes_are_filled(case):
    scene, spect, segmentation, _ = case
    chosen_volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "mine")
    chosen_table = scene.AddNewNodeByClass("vtkMRMLTableNode", "my table")
    count = _node_count(scene)
    volume, table = logic.correct_volume(
        spect, "iy", segmentation, output_volume=chosen_volume, output_table=chosen_table
    )
    assert volume is chosen_volume and table is chosen_table
    assert _node_count(scene) == count
    assert slicer.util.arrayFromVolume(chosen_volume).shape == slicer.util.arrayFromVolume(spect).shape
    assert chosen_table.GetNumberOfRows() == 1


def test_dl_with_an_installed_model_keeps_the_total_activity(case, tmp_path):
    scene, spect, segmentation, _ = case
    save_tiny_model(tmp_path)
    volume, table = logic.correct_volume(spect, "dl", models_folder=tmp_path, device="cpu")
    assert table is None and volume.GetName() == "SPECT DL-PVC"
    spect_image, corrected = mrml.image_from_volume_node(spect), mrml.image_from_volume_node(volume)
    assert correction.total_activity_Bq(corrected) == pytest.approx(correction.total_activity_Bq(spect_image), rel=1e-6)
    provenance = json.loads(volume.GetAttribute("DeepDosimetry.Provenance"))
    assert provenance["model_sha256"] == correction.load_dlpvc_model(folder=tmp_path).card["weights_sha256"]
    _, table = logic.correct_volume(spect, "dl", segmentation, models_folder=tmp_path, device="cpu")
    (row,) = mrml.rows_from_table_node(table)
    assert row["segment"] == "sphere"


def test_a_segmentation_on_another_grid_is_rasterised_onto_the_spect(case):
    scene, spect, _, sphere = case
    fine = np.repeat(np.repeat(np.repeat(sphere, 2, 0), 2, 1), 2, 2).astype(np.uint8)
    spect_image = mrml.image_from_volume_node(spect)
    origin = np.array(spect_image.GetOrigin()) - 1.0  # 2 mm voxels, centres 1 mm inside the 4 mm ones
    labelmap = image_from_array(fine, spacing=(2.0, 2.0, 2.0), origin=origin.tolist())
    segmentation = mrml.add_segmentation_node(scene, labelmap, {1: "fine sphere"}, "fine")
    _, table = logic.correct_volume(spect, "iy", segmentation, fwhm_mm=(12.0,) * 3)
    (row,) = mrml.rows_from_table_node(table)
    assert row["segment"] == "fine sphere"
    assert row["volume_ml"] == pytest.approx(sphere.sum() * 0.064, rel=0.1)


def _unrelated_segmentation(scene, spect):
    image = mrml.image_from_volume_node(spect)
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[2:4, 2:4, 2:4] = 1
    far = (np.array(image.GetOrigin()) + 1000.0).tolist()
    return mrml.add_segmentation_node(scene, image_from_array(labels, spacing=(4.0,) * 3, origin=far), {1: "x"}, "far")


def _set_voxels(spect, change) -> None:
    array = slicer.util.arrayFromVolume(spect)
    change(array)
    slicer.util.arrayFromVolumeModified(spect)


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        (lambda scene, spect, seg: _set_voxels(spect, lambda a: a.__setitem__((0, 0, 0), np.nan)), "NaN"),
        (lambda scene, spect, seg: _set_voxels(spect, lambda a: a.__setitem__((0, 0, 0), -0.05 * a.max())),
         "negative"),  # IY-PVC accepts negatives down to -1 % of the maximum only
        (lambda scene, spect, seg: _set_voxels(spect, lambda a: a.__imul__(0.0)), "zero everywhere"),
        (lambda scene, spect, seg: spect.SetAttribute(mrml.UNIT_ATTRIBUTE, "counts"), "expected Bq/mL"),
    ],
)
def test_bad_spect_is_refused_and_nothing_written(case, arrange, message):
    scene, spect, segmentation, _ = case
    arrange(scene, spect, segmentation)
    count = _node_count(scene)
    with pytest.raises(ValueError, match=message):
        logic.correct_volume(spect, "iy", segmentation)
    assert _node_count(scene) == count


def test_a_single_slice_volume_is_refused(scene):
    values = np.full((1, 12, 12), 100.0, np.float32)
    spect = mrml.add_volume_node(scene, image_from_array(values, unit="Bq/mL"), "slice")
    count = _node_count(scene)
    with pytest.raises(ValueError, match=r"SPECT volume 'slice': is 2D"):
        logic.correct_volume(spect, "dl")
    assert _node_count(scene) == count


def test_bad_segmentation_method_and_outputs_are_refused_and_nothing_written(case, tmp_path):
    scene, spect, segmentation, _ = case
    far = _unrelated_segmentation(scene, spect)
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "a table")
    count = _node_count(scene)
    with pytest.raises(ValueError, match=r"segment\(s\) 'x' have no voxel on the grid of SPECT volume 'SPECT'"):
        logic.correct_volume(spect, "iy", far)
    with pytest.raises(ValueError, match="IY-PVC needs a segmentation"):
        logic.correct_volume(spect, "iy")
    with pytest.raises(ValueError, match="method: expected one of iy, dl"):
        logic.correct_volume(spect, "pvc", segmentation)
    with pytest.raises(ValueError, match="is the SPECT volume itself"):
        logic.correct_volume(spect, "iy", segmentation, output_volume=spect)
    with pytest.raises(ValueError, match="output volume: expected a scalar volume node, got vtkMRMLTableNode"):
        logic.correct_volume(spect, "iy", segmentation, output_volume=table)
    with pytest.raises(ValueError, match="output table: expected a table node, got vtkMRMLSegmentationNode"):
        logic.correct_volume(spect, "iy", segmentation, output_table=far)
    with pytest.raises(ValueError, match="no model dlpvc-r2unet in"):
        logic.correct_volume(spect, "dl", segmentation, models_folder=tmp_path)
    assert _node_count(scene) == count


def test_cancel_writes_nothing(case):
    scene, spect, segmentation, _ = case
    chosen = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "untouched")
    count = _node_count(scene)

    def cancel_at_half(fraction: float, message: str) -> None:
        if fraction >= 0.5:
            raise Cancelled("user")

    with pytest.raises(Cancelled):
        logic.correct_volume(spect, "iy", segmentation, output_volume=chosen, progress=cancel_at_half)
    assert _node_count(scene) == count
    assert chosen.GetImageData() is None
