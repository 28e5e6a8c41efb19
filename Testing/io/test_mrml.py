"""DosimetryCore.io.mrml on real MRML (slicer-core): volumes, segmentations, tables, scene bundles."""

from __future__ import annotations

import os
import zipfile
from datetime import datetime

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import slicer
import vtk
from scipy.spatial.transform import Rotation

from DosimetryCore import io
from DosimetryCore.core.metadata import UNIT_KEY
from DosimetryCore.io import mrml


@pytest.fixture
def oblique_image(rng):
    """Anisotropic, non-axis-aligned, off-origin float32 image in LPS."""
    image = sitk.GetImageFromArray(rng.random((5, 6, 7)).astype(np.float32))
    image.SetSpacing((1.5, 2.25, 3.5))
    image.SetOrigin((10.0, -20.0, 30.5))
    image.SetDirection(Rotation.from_euler("xyz", [10, -25, 40], degrees=True).as_matrix().ravel().tolist())
    image.SetMetaData(UNIT_KEY, "Bq/mL")
    return image


def test_volume_round_trip_is_exact(scene, oblique_image):
    node = mrml.add_volume_node(scene, oblique_image, "activity")
    back = mrml.image_from_volume_node(node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(oblique_image))
    np.testing.assert_allclose(back.GetSpacing(), oblique_image.GetSpacing(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.GetOrigin(), oblique_image.GetOrigin(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.GetDirection(), oblique_image.GetDirection(), rtol=0, atol=1e-12)
    assert back.GetMetaData(UNIT_KEY) == "Bq/mL"
    assert node.GetAttribute(mrml.UNIT_ATTRIBUTE) == "Bq/mL"
    assert node.GetVoxelValueUnits().GetCodeValue() == "Bq/mL"


def test_ras_lps_flip_matches_physical_points(scene, oblique_image):
    node = mrml.add_volume_node(scene, oblique_image, "activity")
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    index = (3, 1, 4)
    ras = ijk_to_ras.MultiplyPoint((*index, 1.0))[:3]
    lps = oblique_image.TransformIndexToPhysicalPoint(index)
    np.testing.assert_allclose(ras, (-lps[0], -lps[1], lps[2]), atol=1e-9)


def test_nrrd_written_by_the_storage_node_reads_back_in_simpleitk(scene, oblique_image, tmp_path):
    node = mrml.add_volume_node(scene, oblique_image, "activity")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "activity.nrrd"))
    assert storage.WriteData(node)
    read = io.read_image(tmp_path / "activity.nrrd")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(oblique_image))
    np.testing.assert_allclose(read.GetOrigin(), oblique_image.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(read.GetSpacing(), oblique_image.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(read.GetDirection(), oblique_image.GetDirection(), atol=1e-6)


def test_update_existing_volume_node(scene, oblique_image):
    node = mrml.add_volume_node(scene, oblique_image, "activity")
    replacement = sitk.GetImageFromArray(np.ones((2, 3, 4), np.float32))
    replacement.SetMetaData("deepdosimetry.model_sha256", "abc123")
    mrml.update_volume_node_from_image(node, replacement)
    assert slicer.util.arrayFromVolume(node).shape == (2, 3, 4)
    assert node.GetOrigin() == (0.0, 0.0, 0.0)
    assert node.GetAttribute("DeepDosimetry.Model_sha256") == "abc123"


def test_volume_errors(scene, oblique_image):
    with pytest.raises(ValueError, match="vtkMRMLScalarVolumeNode"):
        mrml.image_from_volume_node(None)
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(ValueError, match="no image data"):
        mrml.image_from_volume_node(empty)
    node = mrml.add_volume_node(scene, oblique_image, "moved")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(ValueError, match="harden"):
        mrml.image_from_volume_node(node)
    with pytest.raises(ValueError, match="vtkMRMLScene"):
        mrml.add_volume_node(None, oblique_image, "x")
    with pytest.raises(ValueError, match="3D"):
        mrml.add_volume_node(scene, sitk.Image(3, 3, sitk.sitkFloat32), "x")


def _labels(oblique_image):
    labels = np.zeros((5, 6, 7), np.uint16)
    labels[1:3, 1:4, 1:4] = 1
    labels[3:5, 2:6, 3:7] = 2
    labelmap = sitk.GetImageFromArray(labels)
    labelmap.CopyInformation(oblique_image)
    return labels, labelmap


def test_segmentation_round_trip_keeps_labels_and_names(scene, oblique_image):
    labels, labelmap = _labels(oblique_image)
    reference = mrml.add_volume_node(scene, oblique_image, "reference")
    segmentation = mrml.add_segmentation_node(scene, labelmap, {1: "liver", 2: "left kidney"}, "organs")
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 2
    exported, names = mrml.labelmap_from_segmentation_node(segmentation, reference)
    assert names == {1: "liver", 2: "left kidney"}
    np.testing.assert_array_equal(sitk.GetArrayFromImage(exported), labels)
    np.testing.assert_allclose(exported.GetDirection(), oblique_image.GetDirection(), atol=1e-12)
    kidney_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("left kidney")
    only_kidney, names = mrml.labelmap_from_segmentation_node(segmentation, reference, [kidney_id])
    assert names == {1: "left kidney"}
    np.testing.assert_array_equal(sitk.GetArrayFromImage(only_kidney), (labels == 2).astype(np.uint16))
    # the converter rules are registered: the 3D (closed surface) representation can be made
    assert segmentation.CreateClosedSurfaceRepresentation()
    assert segmentation.GetSegmentation().ContainsRepresentation("Closed surface")
    # helper nodes used for the conversion (labelmap, its display node and color table) do not stay
    nodes_after_import = scene.GetNumberOfNodes()
    mrml.labelmap_from_segmentation_node(segmentation, reference)
    assert scene.GetNumberOfNodes() == nodes_after_import
    assert scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0


def test_segmentation_errors(scene, oblique_image):
    _, labelmap = _labels(oblique_image)
    with pytest.raises(ValueError, match=r"labels 3 \(spleen\) are empty"):
        mrml.add_segmentation_node(scene, labelmap, {1: "liver", 3: "spleen"}, "organs")
    with pytest.raises(ValueError, match="integer labels"):
        mrml.add_segmentation_node(scene, sitk.Cast(labelmap, sitk.sitkFloat32), {1: "liver"}, "organs")
    reference = mrml.add_volume_node(scene, oblique_image, "reference")
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    with pytest.raises(ValueError, match="has no segments"):
        mrml.labelmap_from_segmentation_node(empty, reference)
    segmentation = mrml.add_segmentation_node(scene, labelmap, {1: "liver"}, "organs")
    with pytest.raises(ValueError, match="segment_ids"):
        mrml.labelmap_from_segmentation_node(segmentation, reference, ["nope"])
    other_scene = mrml.new_scene()
    foreign = mrml.add_volume_node(other_scene, oblique_image, "elsewhere")
    with pytest.raises(ValueError, match="same scene"):
        mrml.labelmap_from_segmentation_node(segmentation, foreign)


def test_table_from_rows(scene):
    rows = [{"segment": "liver", "mean": 1.5, "voxels": 10}, {"segment": "kidney", "mean": 2.0, "voxels": 3}]
    table = mrml.add_table_node(scene, rows, "stats", units={"mean": "Bq/mL"})
    assert table.GetNumberOfRows() == 2
    assert table.GetColumnUnitLabel("mean") == "Bq/mL"
    assert mrml.rows_from_table_node(table) == [
        {"segment": "liver", "mean": 1.5, "voxels": 10.0},
        {"segment": "kidney", "mean": 2.0, "voxels": 3.0},
    ]
    mrml.update_table_node(table, [{"a": 1.0}])
    assert mrml.rows_from_table_node(table) == [{"a": 1.0}]
    with pytest.raises(ValueError, match="no rows"):
        mrml.add_table_node(scene, [], "empty")
    with pytest.raises(ValueError, match="row 1 has columns"):
        mrml.add_table_node(scene, [{"a": 1}, {"b": 2}], "ragged")
    with pytest.raises(ValueError, match="units"):
        mrml.add_table_node(scene, [{"a": 1}], "bad units", units={"b": "mL"})
    assert scene.GetFirstNodeByName("bad units") is None


def test_scene_bundle_reloads(scene, oblique_image, tmp_path):
    _, labelmap = _labels(oblique_image)
    mrml.add_volume_node(scene, oblique_image, "activity")
    mrml.add_segmentation_node(scene, labelmap, {1: "liver", 2: "kidney"}, "organs")
    mrml.add_table_node(scene, [{"segment": "liver", "mean": 1.5}], "stats")
    path = mrml.save_scene_bundle(scene, tmp_path / "out" / "result.mrb")
    loaded = mrml.load_scene_bundle(path)
    volume = loaded.GetFirstNodeByName("activity")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(volume), sitk.GetArrayFromImage(oblique_image))
    np.testing.assert_allclose(
        mrml.image_from_volume_node(volume).GetDirection(), oblique_image.GetDirection(), atol=1e-6
    )
    segments = loaded.GetFirstNodeByName("organs").GetSegmentation()
    assert sorted(segments.GetNthSegment(i).GetName() for i in range(segments.GetNumberOfSegments())) == [
        "kidney",
        "liver",
    ]
    assert mrml.rows_from_table_node(loaded.GetFirstNodeByName("stats")) == [{"segment": "liver", "mean": 1.5}]
    with pytest.raises(ValueError, match=".mrb"):
        mrml.save_scene_bundle(scene, tmp_path / "result.mrml")
    with pytest.raises(ValueError, match="does not exist"):
        mrml.load_scene_bundle(tmp_path / "missing.mrb")
    (tmp_path / "junk.mrb").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        mrml.load_scene_bundle(tmp_path / "junk.mrb")
    with zipfile.ZipFile(tmp_path / "empty.mrb", "w") as archive:
        archive.writestr("readme.txt", "no scene in here")
    working_directory = os.getcwd()
    with pytest.raises(ValueError, match="not a readable"):
        mrml.load_scene_bundle(tmp_path / "empty.mrb")
    assert os.getcwd() == working_directory


def test_acquisition_time_comes_from_the_node_or_slicers_dicom_database(scene, oblique_image, tmp_path, monkeypatch):
    from dicom_builders import write_series

    from DosimetryCore.core.acquisition_time import acquisition_datetime, set_acquisition_datetime

    when = datetime(2026, 12, 1, 14, 15, 30)
    node = mrml.add_volume_node(scene, set_acquisition_datetime(sitk.Image(oblique_image), when), "SPECT 24 h")
    assert node.GetAttribute(mrml.ACQUISITION_DATETIME_ATTRIBUTE) == "2026-12-01T14:15:30"
    assert acquisition_datetime(mrml.image_from_volume_node(node)) == when

    paths = write_series(tmp_path / "ct", np.zeros((2, 3, 3), np.int16), modality="CT", spacing_mm=(1.0, 1.0, 1.0),
                         origin_mm=(0.0, 0.0, 0.0))  # fmt: skip
    uids = []
    for index, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        dataset.AcquisitionDate, dataset.AcquisitionTime = "20261202", f"0930{index:02d}"
        dataset.save_as(path)
        uids.append(str(dataset.SOPInstanceUID))

    class Database:
        """What Slicer's DICOM database answers for the instances it indexed."""

        def fileForInstance(self, uid):  # noqa: N802 (Slicer's name)
            return str(paths[uids.index(uid)]) if uid in uids else ""

    loaded = mrml.add_volume_node(scene, oblique_image, "CT from the DICOM module")
    loaded.SetAttribute("DICOM.instanceUIDs", " ".join(uids))
    assert acquisition_datetime(mrml.image_from_volume_node(loaded)) is None  # no database: not known
    monkeypatch.setattr(slicer, "dicomDatabase", Database(), raising=False)
    assert acquisition_datetime(mrml.image_from_volume_node(loaded)) == datetime(2026, 12, 2, 9, 30)
