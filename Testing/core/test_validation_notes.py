"""DosimetryCore.core.validation.activity_notes: doubtful activity images are accepted loudly."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.validation import activity_notes


def image(value_bq_per_ml: float, unit: str | None = "Bq/mL") -> sitk.Image:
    """A 20^3 image of 4.8 mm voxels (2.2 L) with one value everywhere."""
    result = sitk.GetImageFromArray(np.full((20, 20, 20), value_bq_per_ml, np.float32))
    result.SetSpacing((4.8, 4.8, 4.8))
    if unit:
        result.SetMetaData("deepdosimetry.unit", unit)
    return result


def test_a_plausible_tagged_image_has_no_notes():
    assert activity_notes(image(1.0e5), "spect") == []  # 221 MBq


def test_an_untagged_image_is_taken_as_bq_per_ml_with_a_note():
    notes = activity_notes(image(1.0e5, unit=None), "spect.nii")
    assert notes == ["spect.nii: the image states no unit; its values were taken as Bq/mL"]


def test_totals_outside_the_plausible_range_name_the_likely_unit_mistake():
    low = activity_notes(image(1.0), "spect")  # MBq/mL read as Bq/mL: 0.0022 MBq
    assert len(low) == 1 and "below 1 MBq" in low[0] and "not MBq/mL" in low[0]
    high = activity_notes(image(1.0e8), "spect")  # 221 GBq
    assert len(high) == 1 and "above 50 GBq" in high[0]
