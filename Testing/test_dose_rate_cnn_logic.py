"""DoseRateCNNLib.logic on real MRML: the CT-derived mass density map."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from DoseRateCNNLib import logic
from DosimetryCore import mrml, tissue


@pytest.fixture
def ct_node(scene):
    hu = np.full((10, 12, 14), 40.0, np.float32)
    hu[:, :, :3] = -1000.0
    hu[:, :, 10:] = 1200.0
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((-14.0, -12.0, -15.0))
    return mrml.add_volume_node(scene, image, "CT")


def test_density_on_the_ct_grid(ct_node):
    before = slicer.util.arrayFromVolume(ct_node).copy()
    density_node = logic.density_map(ct_node)
    density = slicer.util.arrayFromVolume(density_node)
    assert density[5, 6, 6] == pytest.approx(0.00069 * 40 + 1.03107)
    assert density[5, 6, 12] == pytest.approx(0.00069 * 1200 + 1.03107)
    assert density[5, 6, 0] == pytest.approx(tissue.AIR_DENSITY_G_PER_CM3)
    assert density_node.GetAttribute(mrml.UNIT_ATTRIBUTE) == "g/cm3"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(ct_node), before)


def test_density_resampled_onto_the_activity_grid(scene, ct_node):
    activity = sitk.Image(5, 6, 7, sitk.sitkFloat32)
    activity.SetSpacing((4.0, 4.0, 6.0))
    activity.SetOrigin((-13.0, -11.0, -12.0))
    activity_node = mrml.add_volume_node(scene, activity, "SPECT")
    density_node = logic.density_map(ct_node, activity_node)
    density = mrml.image_from_volume_node(density_node)
    assert density.GetSize() == (5, 6, 7)
    assert density.GetSpacing() == pytest.approx((4.0, 4.0, 6.0))
    centre = density.TransformIndexToPhysicalPoint((2, 3, 3))
    assert density.GetPixel(2, 3, 3) == pytest.approx(0.00069 * 40 + 1.03107)
    assert np.isfinite(centre).all()


def test_bad_ct_is_refused(scene, ct_node):
    array = slicer.util.arrayFromVolume(ct_node)
    array[0, 0, 0] = np.nan
    slicer.util.arrayFromVolumeModified(ct_node)
    with pytest.raises(ValueError, match="NaN"):
        logic.density_map(ct_node)
    array[0, 0, 0] = 0.5
    array *= 1e-3
    slicer.util.arrayFromVolumeModified(ct_node)
    ct_node.SetAttribute(mrml.UNIT_ATTRIBUTE, "Bq/mL")
    with pytest.raises(ValueError, match="expected HU"):
        logic.density_map(ct_node)
    ct_node.SetAttribute(mrml.UNIT_ATTRIBUTE, "HU")
    array[:] = 5e4
    slicer.util.arrayFromVolumeModified(ct_node)
    with pytest.raises(ValueError, match="not CT numbers"):
        logic.density_map(ct_node)
