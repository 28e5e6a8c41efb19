"""DoseRateCNNLib.logic on real MRML: dose-rate maps (VDK, LED) and the per-segment table."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from DoseRateCNNLib import logic
from DosimetryCore.core.constants import J_PER_MEV, SECONDS_PER_HOUR
from DosimetryCore.io import mrml
from DosimetryCore.physics.nuclides import load_nuclide

WATER_DENSITY_FROM_CT = 1.02351  # g/cm^3 at 0 HU, Li et al. eq. 1


@pytest.fixture
def case(scene):
    activity = np.zeros((24, 24, 24), np.float32)
    activity[6:18, 6:18, 6:18] = 1e6
    image = sitk.GetImageFromArray(activity)
    image.SetSpacing((4.8, 4.8, 4.8))
    image.SetOrigin((-55.2, -55.2, -55.2))
    image.SetMetaData("deepdosimetry.unit", "Bq/mL")
    spect = mrml.add_volume_node(scene, image, "SPECT")
    hu = np.full((30, 30, 30), -1000.0, np.float32)
    hu[3:27, 3:27, 3:27] = 0.0  # a water body in air
    ct_image = sitk.GetImageFromArray(hu)
    ct_image.SetSpacing((4.0, 4.0, 4.0))
    ct_image.SetOrigin((-58.0, -58.0, -58.0))
    ct = mrml.add_volume_node(scene, ct_image, "CT")
    labels = sitk.Cast(image > 0, sitk.sitkUInt8)
    segmentation = mrml.add_segmentation_node(scene, labels, {1: "source"}, "Segments")
    return scene, spect, ct, segmentation


def _electron_Gy_per_h(activity_Bq_per_mL: float) -> float:
    lutetium = load_nuclide("Lu-177")
    electron_MeV = lutetium.mean_energy_per_decay_MeV("beta") + lutetium.mean_energy_per_decay_MeV("electron")
    return activity_Bq_per_mL * electron_MeV * J_PER_MEV * SECONDS_PER_HOUR / (WATER_DENSITY_FROM_CT * 1e-3)


def test_led_equals_the_local_electron_energy(case):
    _, spect, ct, _ = case
    led, table, chart = logic.dose_rate_map(spect, ct, "led")
    assert table is None and chart is None
    values = slicer.util.arrayFromVolume(led)
    assert values[12, 12, 12] == pytest.approx(_electron_Gy_per_h(1e6), rel=1e-4)
    assert values[0, 0, 0] == 0.0
    assert led.GetAttribute(mrml.UNIT_ATTRIBUTE) == "Gy/h"
    assert "led" in led.GetAttribute("DeepDosimetry.Provenance")


def test_vdk_adds_photon_dose_and_fills_the_table_and_histograms(case, tmp_path):
    scene, spect, ct, segmentation = case
    before = slicer.util.arrayFromVolume(spect).copy()
    reports = []
    png = tmp_path / "dvh.png"
    vdk, table, chart = logic.dose_rate_map(
        spect, ct, "vdk", segmentation, histogram_png=str(png), progress=lambda f, m: reports.append(f)
    )
    centre = float(slicer.util.arrayFromVolume(vdk)[12, 12, 12])
    photon_MeV = load_nuclide("Lu-177").mean_energy_per_decay_MeV("photon")
    electron = _electron_Gy_per_h(1e6)
    # the 5.8 cm cube absorbs some, not all, of the photon energy at its centre
    assert electron < centre < electron * (1 + photon_MeV / 0.1479)
    rows = mrml.rows_from_table_node(table)
    assert rows[0]["segment"] == "source"
    assert rows[0]["volume_ml"] == pytest.approx(12**3 * 4.8**3 / 1000)
    assert rows[0]["mass_g"] == pytest.approx(rows[0]["volume_ml"] * WATER_DENSITY_FROM_CT, rel=1e-4)
    assert chart.GetNumberOfPlotSeriesNodes() == 1 and png.stat().st_size > 1000
    series = chart.GetNthPlotSeriesNode(0)
    data = mrml.rows_from_table_node(series.GetTableNode())
    volumes = [row["source"] for row in data]
    assert volumes[0] == 100.0 and volumes[-1] > 0 and all(a >= b for a, b in zip(volumes, volumes[1:], strict=False))
    assert rows[0]["D98%_Gy_per_h"] <= rows[0]["D50%_Gy_per_h"] <= rows[0]["D2%_Gy_per_h"] <= rows[0]["max_Gy_per_h"]
    assert table.GetColumnUnitLabel("mean_Gy_per_h") == "Gy/h"
    assert reports[0] == 0.0 and reports[-1] == 1.0
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(spect), before)


def test_chosen_output_nodes_are_filled(case):
    scene, spect, ct, segmentation = case
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "mine")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "my table")
    outputs = logic.dose_rate_map(spect, ct, "led", segmentation, output_volume=volume, output_table=table)
    assert outputs[:2] == (volume, table)
    assert slicer.util.arrayFromVolume(volume).shape == (24, 24, 24)
    assert table.GetNumberOfRows() == 1


def _ct_node(scene, size: int, name: str):
    """A CT of ``size``^3 voxels of 4.8 mm centred on the activity grid: water inside a one-voxel air border."""
    hu = np.full((size,) * 3, -1000.0, np.float32)
    hu[1:-1, 1:-1, 1:-1] = 0.0
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((4.8, 4.8, 4.8))
    image.SetOrigin((-2.4 * (size - 1),) * 3)
    return mrml.add_volume_node(scene, image, name)


def test_ct_outside_its_field_is_air_and_must_cover_the_activity(case):
    scene, spect, _, _ = case
    covering = _ct_node(scene, 17, "covering CT")
    dose, _, _ = logic.dose_rate_map(spect, covering, "led")
    values = slicer.util.arrayFromVolume(dose)
    assert values[12, 12, 12] == pytest.approx(_electron_Gy_per_h(1e6), rel=1e-4) and values[0, 0, 0] == 0.0
    nodes = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="'small CT': does not cover the activity"):
        logic.dose_rate_map(spect, _ct_node(scene, 7, "small CT"), "led")
    assert scene.GetNumberOfNodes() == nodes + 1  # the small CT only: nothing written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.__setitem__((0, 0, 0), np.nan), "NaN"),
        (lambda a: a.__setitem__((0, 0, 0), -1.0), "negative"),
        (lambda a: a.__imul__(0.0), "zero everywhere"),
    ],
)
def test_bad_activity_is_refused_and_nothing_written(case, change, message):
    scene, spect, ct, _ = case
    change(slicer.util.arrayFromVolume(spect))
    slicer.util.arrayFromVolumeModified(spect)
    nodes = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match=message):
        logic.dose_rate_map(spect, ct, "vdk")
    assert scene.GetNumberOfNodes() == nodes


def test_bad_ct_method_and_outputs(case):
    scene, spect, ct, _ = case
    with pytest.raises(ValueError, match="method"):
        logic.dose_rate_map(spect, ct, "unet")
    with pytest.raises(ValueError, match="only the cnn method takes a model"):
        logic.dose_rate_map(spect, ct, "vdk", model_name="dose-cnn")
    with pytest.raises(ValueError, match="inputs are never modified"):
        logic.dose_rate_map(spect, ct, "led", output_volume=spect)
    ct.SetAttribute(mrml.UNIT_ATTRIBUTE, "Bq/mL")
    with pytest.raises(ValueError, match="expected HU"):
        logic.dose_rate_map(spect, ct, "led")
    ct.SetAttribute(mrml.UNIT_ATTRIBUTE, "HU")
    slicer.util.arrayFromVolume(ct)[:] += 1024
    slicer.util.arrayFromVolumeModified(ct)
    with pytest.raises(ValueError, match="shifted by \\+1024"):
        logic.dose_rate_map(spect, ct, "led")
    spect.SetAttribute(mrml.UNIT_ATTRIBUTE, "counts")
    with pytest.raises(ValueError, match="expected Bq/mL"):
        logic.dose_rate_map(spect, ct, "led")


def test_a_wrong_output_table_node_is_refused_before_anything_is_written(case):
    scene, spect, ct, segmentation = case
    not_a_table = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not a table")
    nodes = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="output table: expected a table node"):
        logic.dose_rate_map(spect, ct, "led", segmentation, output_table=not_a_table)
    assert scene.GetNumberOfNodes() == nodes
