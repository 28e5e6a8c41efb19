"""DosimetryCore.core.acquisition_time and io.dicom_time: when a time point was acquired, in hours."""

from __future__ import annotations

from datetime import datetime

import pydicom
import pytest
import SimpleITK as sitk

from DosimetryCore.core.acquisition_time import (
    acquisition_datetime,
    carry_acquisition_time,
    hours_after_administration,
    hours_from_images,
    parse_datetime,
    set_acquisition_datetime,
)
from DosimetryCore.io.dicom_time import series_acquisition_datetime


def test_dates_in_iso_and_dicom_form_are_read():
    assert parse_datetime("2026-11-30T10:15") == datetime(2026, 11, 30, 10, 15)
    assert parse_datetime("2026-11-30 10:15:30") == datetime(2026, 11, 30, 10, 15, 30)
    assert parse_datetime("20261130101530.25") == datetime(2026, 11, 30, 10, 15, 30, 250000)
    assert parse_datetime("202611301015") == datetime(2026, 11, 30, 10, 15)
    with pytest.raises(ValueError, match="is not a date and time"):
        parse_datetime("yesterday", "--administered")
    with pytest.raises(ValueError, match="time-zone offset"):
        parse_datetime("2026-11-30T10:15+01:00")


def test_hours_after_administration_refuses_an_acquisition_before_it():
    assert hours_after_administration(datetime(2026, 12, 1, 10), datetime(2026, 11, 30, 10)) == 24.0
    with pytest.raises(ValueError, match="is not after the administration"):
        hours_after_administration(datetime(2026, 11, 30, 9), datetime(2026, 11, 30, 10), "SPECT 1")


def test_the_acquisition_time_travels_with_an_image():
    activity = set_acquisition_datetime(sitk.Image(2, 2, 2, sitk.sitkFloat32), datetime(2026, 12, 1, 14, 5))
    rate = carry_acquisition_time(activity, sitk.Image(2, 2, 2, sitk.sitkFloat32))
    assert acquisition_datetime(rate) == datetime(2026, 12, 1, 14, 5)
    ct = set_acquisition_datetime(sitk.Image(2, 2, 2, sitk.sitkFloat32), datetime(2026, 12, 1, 14, 20))
    assert hours_from_images([sitk.Image(2, 2, 2, sitk.sitkFloat32), ct], datetime(2026, 12, 1, 10), "tp")[0] == (
        pytest.approx(4 + 20 / 60)
    )
    assert acquisition_datetime(sitk.Image(2, 2, 2, sitk.sitkFloat32)) is None
    with pytest.raises(ValueError, match="tp: no acquisition time"):
        hours_from_images([sitk.Image(2, 2, 2, sitk.sitkFloat32)], datetime(2026, 12, 1, 10), "tp")


def _header(**values: str) -> pydicom.Dataset:
    header = pydicom.Dataset()
    for name, value in values.items():
        setattr(header, name, value)
    return header


def test_dicom_headers_give_the_earliest_acquisition_time():
    slices = [
        _header(AcquisitionDate="20261201", AcquisitionTime="141502.5"),
        _header(AcquisitionDate="20261201", AcquisitionTime="1415"),
    ]
    assert series_acquisition_datetime(slices) == datetime(2026, 12, 1, 14, 15)
    assert series_acquisition_datetime([_header(AcquisitionDateTime="20261201141502+0100")]) == datetime(
        2026, 12, 1, 14, 15, 2
    )
    assert series_acquisition_datetime([_header(SeriesDate="20261201", SeriesTime="093000")]) == datetime(
        2026, 12, 1, 9, 30
    )
    assert series_acquisition_datetime([_header(AcquisitionDate="20261201")]) is None
