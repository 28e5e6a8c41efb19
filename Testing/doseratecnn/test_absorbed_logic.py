"""DoseRateCNNLib.absorbed on real MRML: dose-rate nodes at several time points -> absorbed dose, table, charts."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import numpy as np
import pytest
import slicer

from DoseRateCNNLib.absorbed import absorbed_dose_map
from DosimetryCore.core.acquisition_time import set_acquisition_datetime
from DosimetryCore.core.volume import array_from_image, image_from_array, set_unit
from DosimetryCore.io import mrml
from DosimetryCore.phantoms import LABELS, make_torso

HALF_LIFE_H = 60.0


@pytest.fixture(scope="module")
def torso():
    return make_torso((64, 48, 80), 8.0, seed=4, n_lesions=0)


def test_nodes_in_dose_table_and_charts_out(scene, torso):
    labels = array_from_image(torso.labels)
    liver = labels == LABELS["liver"]
    ct = mrml.add_volume_node(scene, torso.ct, "CT")
    points = []
    for time_h in (24.0, 96.0, 168.0):
        values = np.where(liver, 0.03 * math.exp(-math.log(2) / HALF_LIFE_H * time_h), 0.0).astype(np.float32)
        image = set_unit(image_from_array(values, torso.ct), "Gy/h", "absorbed dose rate")
        points.append((time_h, mrml.add_volume_node(scene, image, f"rate {time_h:g} h"), ct))
    segmentation = mrml.add_segmentation_node(scene, image_from_array(liver.astype(np.uint8), torso.ct),
                                              {1: "liver"}, "organs")  # fmt: skip
    before = slicer.util.arrayFromVolume(points[0][1]).copy()
    volume, table, curves, dvh = absorbed_dose_map(points, segmentation, register=False)
    rows = mrml.rows_from_table_node(table)
    assert rows[0]["segment"] == "liver" and rows[0]["model"] == "mono"
    assert rows[0]["mean_Gy"] == pytest.approx(0.03 * HALF_LIFE_H / math.log(2), rel=1e-3)
    assert curves.GetNumberOfPlotSeriesNodes() == 1 and dvh.GetNumberOfPlotSeriesNodes() == 1
    assert volume.GetAttribute(mrml.UNIT_ATTRIBUTE) == "Gy"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(points[0][1]), before)
    with pytest.raises(ValueError, match="needs a dose-rate \\(or activity\\) volume and its CT"):
        absorbed_dose_map([(24.0, points[0][1], None)])


def test_times_from_the_acquisition_time_and_given_output_nodes(scene, torso):
    labels = array_from_image(torso.labels)
    liver = labels == LABELS["liver"]
    ct = mrml.add_volume_node(scene, torso.ct, "CT")
    administered = datetime(2026, 11, 30, 10, 0)
    points = []
    for time_h in (24.0, 96.0):
        values = np.where(liver, 0.03 * math.exp(-math.log(2) / HALF_LIFE_H * time_h), 0.0).astype(np.float32)
        image = set_unit(image_from_array(values, torso.ct), "Gy/h", "absorbed dose rate")
        set_acquisition_datetime(image, administered + timedelta(hours=time_h))
        points.append((None, mrml.add_volume_node(scene, image, f"rate {time_h:g} h"), ct))
    segmentation = mrml.add_segmentation_node(scene, image_from_array(liver.astype(np.uint8), torso.ct),
                                              {1: "liver"}, "organs")  # fmt: skip
    with pytest.raises(ValueError, match="or the administration date and time"):
        absorbed_dose_map(points, segmentation, register=False)
    volume_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "my dose")
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", "my table")
    with pytest.raises(ValueError, match="is the time point 1 volume itself"):
        absorbed_dose_map(points, segmentation, administration="2026-11-30T10:00", output_volume=points[0][1])
    volume, table, _, _ = absorbed_dose_map(
        points, segmentation, register=False, administration="2026-11-30T10:00", output_volume=volume_node,
        output_table=table_node,
    )  # fmt: skip
    assert volume is volume_node and table is table_node
    row = mrml.rows_from_table_node(table)[0]
    assert row["mean_Gy"] == pytest.approx(0.03 * HALF_LIFE_H / math.log(2), rel=1e-3)
    provenance = json.loads(volume.GetAttribute(mrml.PROVENANCE_ATTRIBUTE_PREFIX + "Provenance"))
    assert provenance["times_h"] == [24.0, 96.0] and provenance["administration"] == "2026-11-30T10:00"
