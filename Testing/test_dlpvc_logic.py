"""DLPVCLib.logic on real MRML: the per-segment activity table of a SPECT volume."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from DLPVCLib import logic
from DosimetryCore import mrml


@pytest.fixture
def case(scene):
    activity = np.zeros((12, 14, 16), np.float32)
    activity[2:6, 2:6, 2:6] = 2000.0
    activity[7:10, 8:12, 9:14] = 500.0
    activity[7, 8, 9] = 900.0
    image = sitk.GetImageFromArray(activity)
    image.SetSpacing((4.0, 4.0, 5.0))
    image.SetOrigin((-30.0, 12.0, 4.0))
    image.SetMetaData("deepdosimetry.unit", "Bq/mL")
    labels = np.zeros_like(activity, dtype=np.uint16)
    labels[2:6, 2:6, 2:6] = 1
    labels[7:10, 8:12, 9:14] = 2
    labelmap = sitk.GetImageFromArray(labels)
    labelmap.CopyInformation(image)
    spect = mrml.add_volume_node(scene, image, "SPECT")
    segmentation = mrml.add_segmentation_node(scene, labelmap, {1: "lesion", 2: "kidney"}, "organs")
    return scene, spect, segmentation, activity


def test_segment_table_values(case):
    scene, spect, segmentation, activity = case
    before = slicer.util.arrayFromVolume(spect).copy()
    reports = []
    table = logic.segment_activity_table(spect, segmentation, progress=lambda f, m: reports.append(f))
    rows = mrml.rows_from_table_node(table)
    voxel_ml = 4.0 * 4.0 * 5.0 / 1000.0
    assert [row["segment"] for row in rows] == ["lesion", "kidney"]
    assert rows[0]["volume_ml"] == pytest.approx(64 * voxel_ml)
    assert rows[0]["activity_MBq"] == pytest.approx(2000.0 * 64 * voxel_ml / 1e6)
    kidney = activity[7:10, 8:12, 9:14]
    assert rows[1]["mean_Bq_per_mL"] == pytest.approx(kidney.mean())
    assert rows[1]["max_Bq_per_mL"] == pytest.approx(900.0)
    assert table.GetColumnUnitLabel("activity_MBq") == "MBq"
    assert reports[0] == 0.0 and reports[-1] == 1.0
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(spect), before)


def test_fills_a_chosen_table_node(case):
    scene, spect, segmentation, _ = case
    chosen = scene.AddNewNodeByClass("vtkMRMLTableNode", "mine")
    assert logic.segment_activity_table(spect, segmentation, chosen) is chosen
    assert chosen.GetNumberOfRows() == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.__setitem__((0, 0, 0), np.nan), "NaN"),
        (lambda a: a.__setitem__((0, 0, 0), -5.0), "negative"),
        (lambda a: a.__imul__(0.0), "zero everywhere"),
    ],
)
def test_bad_spect_is_refused_and_nothing_written(case, change, message):
    scene, spect, segmentation, _ = case
    array = slicer.util.arrayFromVolume(spect)
    change(array)
    slicer.util.arrayFromVolumeModified(spect)
    tables = scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems()
    with pytest.raises(ValueError, match=message):
        logic.segment_activity_table(spect, segmentation)
    assert scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == tables


def test_wrong_unit_and_missing_segmentation(case):
    scene, spect, segmentation, _ = case
    with pytest.raises(ValueError, match="segmentation"):
        logic.segment_activity_table(spect, None)
    spect.SetAttribute(mrml.UNIT_ATTRIBUTE, "counts")
    with pytest.raises(ValueError, match="expected Bq/mL"):
        logic.segment_activity_table(spect, segmentation)
