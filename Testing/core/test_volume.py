"""DosimetryCore.core.volume: array <-> image conversion, units, geometry checks and resampling."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from DosimetryCore.core import validation, volume


def test_image_from_array_keeps_zyx_order_and_geometry():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    image = volume.image_from_array(array, spacing=(1.0, 2.0, 3.0), origin=(5.0, 6.0, 7.0), unit="Bq/mL")
    assert image.GetSize() == (4, 3, 2)
    assert image.GetPixel(3, 2, 1) == array[1, 2, 3]
    assert volume.unit_of(image) == "Bq/mL"
    np.testing.assert_array_equal(volume.array_from_image(image), array)
    copy = volume.image_from_array(array * 2, image)
    assert copy.GetSpacing() == (1.0, 2.0, 3.0) and copy.GetOrigin() == (5.0, 6.0, 7.0)
    assert volume.unit_of(copy) == "Bq/mL"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"array": np.zeros(5)}, "2D or 3D"),
        ({"array": np.array([["a"]])}, "numeric"),
        ({"array": np.zeros((2, 2, 2)), "spacing": (1.0, 0.0, 1.0)}, "spacing"),
        ({"array": np.zeros((2, 2, 3)), "reference": sitk.Image(2, 2, 2, sitk.sitkFloat32)}, "does not match"),
    ],
)
def test_image_from_array_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        volume.image_from_array(**kwargs)


def test_require_image_and_voxel_volume():
    image = sitk.Image(3, 3, 3, sitk.sitkFloat32)
    image.SetSpacing((2.0, 2.0, 2.5))
    assert volume.voxel_volume_ml(image) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="SimpleITK.Image"):
        volume.require_image(np.zeros((3, 3, 3)), "activity")
    with pytest.raises(ValueError, match="activity: expected a 3D image, got 2D"):
        volume.require_image(sitk.Image(3, 3, sitk.sitkFloat32), "activity")
    with pytest.raises(ValueError, match="scalar"):
        volume.require_image(sitk.Image([3, 3, 3], sitk.sitkVectorFloat32, 3), "activity")


def test_same_geometry_and_error_names_both_inputs():
    a = sitk.Image(4, 4, 4, sitk.sitkFloat32)
    b = sitk.Image(4, 4, 4, sitk.sitkFloat32)
    assert volume.same_geometry(a, b)
    b.SetOrigin((0.0, 0.0, 1.0))
    assert not volume.same_geometry(a, b)
    with pytest.raises(ValueError, match="ct: geometry differs from activity"):
        volume.require_same_geometry(b, a, "ct", "activity")


def test_resample_to_keeps_physical_positions():
    array = np.zeros((10, 10, 10), np.float32)
    array[4:6, 4:6, 4:6] = 1.0
    image = volume.image_from_array(array, spacing=(2.0, 2.0, 2.0), unit="Bq/mL")
    reference = sitk.Image(20, 20, 20, sitk.sitkFloat32)
    reference.SetSpacing((1.0, 1.0, 1.0))
    reference.SetOrigin((-0.5, -0.5, -0.5))
    fine = volume.resample_to(image, reference, "nearest")
    assert volume.unit_of(fine) == "Bq/mL"
    # nearest-neighbour resampling of a block keeps its integral
    assert sitk.GetArrayFromImage(fine).sum() * 1.0 == pytest.approx(array.sum() * 8.0)
    with pytest.raises(ValueError, match="interpolator"):
        volume.resample_to(image, reference, "cubic")


def test_resample_to_spacing_keeps_the_field_of_view_centre():
    image = volume.image_from_array(np.ones((8, 8, 8), np.float32), spacing=(4.0, 4.0, 4.0), origin=(10, 20, 30))
    coarse = volume.resample_to_spacing(image, (8.0, 8.0, 8.0))
    assert coarse.GetSize() == (4, 4, 4)
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint((3.5, 3.5, 3.5)))
    coarse_centre = np.array(coarse.TransformContinuousIndexToPhysicalPoint((1.5, 1.5, 1.5)))
    np.testing.assert_allclose(coarse_centre, centre)
    with pytest.raises(ValueError, match="spacing_mm"):
        volume.resample_to_spacing(image, (1.0, 1.0))


def test_set_unit_records_quantity():
    image = sitk.Image(2, 2, 2, sitk.sitkFloat32)
    volume.set_unit(image, "Gy/h", "dose rate")
    assert image.GetMetaData(volume.UNIT_KEY) == "Gy/h"
    assert image.GetMetaData(volume.QUANTITY_KEY) == "dose rate"
    assert volume.unit_of(sitk.Image(2, 2, 2, sitk.sitkFloat32)) is None


def test_check_activity_image_names_the_input_and_the_fault():
    good = volume.image_from_array(np.ones((3, 3, 3), np.float32), unit="Bq/mL")
    assert validation.check_activity_image(good, "spect").dtype == np.float64
    cases = {
        "is 2D": volume.image_from_array(np.ones((1, 3, 3), np.float32)),
        "expected Bq/mL": volume.image_from_array(np.ones((3, 3, 3), np.float32), unit="counts"),
        "NaN": volume.image_from_array(np.full((3, 3, 3), np.nan, np.float32)),
        "negative": volume.image_from_array(-np.ones((3, 3, 3), np.float32)),
        "zero everywhere": volume.image_from_array(np.zeros((3, 3, 3), np.float32)),
    }
    for message, image in cases.items():
        with pytest.raises(ValueError, match=f"spect: .*{message}"):
            validation.check_activity_image(image, "spect")
