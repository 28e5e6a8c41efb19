"""DosimetryCore.io.images: volume files, DICOM series (CT, PET, NM) and NM planar ANT/POST import."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_builders import SECONDARY_CAPTURE, write_nm_tomographic, write_series

from DosimetryCore import io
from DosimetryCore.core.metadata import ACQUISITION_DATETIME_KEY, UNIT_KEY
from DosimetryCore.core.volume import image_from_array


@pytest.mark.parametrize("name", ["a.nrrd", "a.nii.gz", "a.nii", "a.mha"])
def test_volume_round_trip_keeps_values_and_geometry(tmp_path, rng, name):
    array = rng.random((4, 5, 6)).astype(np.float32)
    image = image_from_array(array, spacing=(1.5, 2.0, 3.0), origin=(-10.0, 5.0, 7.5), unit="Bq/mL")
    path = io.write_image(image, tmp_path / "sub" / name)
    back = io.read_image(path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), array)
    assert back.GetSpacing() == pytest.approx((1.5, 2.0, 3.0))
    assert back.GetOrigin() == pytest.approx((-10.0, 5.0, 7.5))
    if name.endswith((".nrrd", ".mha")):
        assert back.GetMetaData(UNIT_KEY) == "Bq/mL"


def test_read_image_rejects_missing_and_unknown_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        io.read_image(tmp_path / "missing.nrrd")
    (tmp_path / "x.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not one of the volume formats"):
        io.read_image(tmp_path / "x.txt")
    (tmp_path / "broken.nrrd").write_text("NRRD0004\nnonsense\n")
    with pytest.raises(ValueError, match="could not be read"):
        io.read_image(tmp_path / "broken.nrrd")
    with pytest.raises(ValueError, match="not one of the volume formats"):
        io.write_image(image_from_array(np.zeros((2, 2, 2))), tmp_path / "x.png")
    with pytest.raises(ValueError, match="SimpleITK.Image"):
        io.write_image(np.zeros((2, 2, 2)), tmp_path / "x.nrrd")


def test_ct_series_applies_rescale_and_keeps_geometry(tmp_path, rng):
    stored = rng.integers(0, 3000, (5, 8, 10)).astype(np.int16)
    write_series(tmp_path / "ct", stored, modality="CT", spacing_mm=(0.8, 0.9, 2.5), origin_mm=(-40.0, -30.0, 100.0),
                 intercept=-1024.0)
    image = io.read_image(tmp_path / "ct")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), stored.astype(np.float32) - 1024.0)
    assert image.GetSpacing() == pytest.approx((0.8, 0.9, 2.5))
    assert image.GetOrigin() == pytest.approx((-40.0, -30.0, 100.0))
    assert image.GetMetaData(UNIT_KEY) == "HU"
    assert image.GetMetaData(io.MODALITY_KEY) == "CT"


def test_series_acquisition_time_is_the_earliest_slice_and_survives_nrrd(tmp_path, rng):
    paths = write_series(tmp_path / "ct", rng.integers(0, 100, (3, 4, 4)).astype(np.int16), modality="CT",
                         spacing_mm=(1.0, 1.0, 2.0), origin_mm=(0.0, 0.0, 0.0))  # fmt: skip
    assert not io.read_image(tmp_path / "ct").HasMetaDataKey(ACQUISITION_DATETIME_KEY)
    for index, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        dataset.AcquisitionDate, dataset.AcquisitionTime = "20261201", f"1415{30 - index:02d}"
        dataset.save_as(path)
    image = io.read_image(tmp_path / "ct")
    assert image.GetMetaData(ACQUISITION_DATETIME_KEY) == "2026-12-01T14:15:28"
    back = io.read_image(io.write_image(image, tmp_path / "ct.nrrd"))
    assert back.GetMetaData(ACQUISITION_DATETIME_KEY) == "2026-12-01T14:15:28"


def test_pet_series_applies_per_slice_slopes_without_truncation(tmp_path, rng):
    stored = rng.integers(0, 20000, (4, 6, 6)).astype(np.int16)
    slopes = [1.0, 0.37, 2.5, 0.0123]
    write_series(tmp_path / "pt", stored, modality="PT", spacing_mm=(4.0, 4.0, 3.0), origin_mm=(0.0, 0.0, 0.0),
                 slopes=slopes, units="BQML")
    image = io.read_dicom_series(tmp_path / "pt")
    expected = stored.astype(np.float64) * np.array(slopes)[:, None, None]
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), expected, rtol=1e-6)
    assert image.GetMetaData(UNIT_KEY) == "Bq/mL"


def test_oblique_series_direction(tmp_path, rng):
    angle = np.deg2rad(20)
    orientation = (np.cos(angle), np.sin(angle), 0.0, -np.sin(angle), np.cos(angle), 0.0)
    stored = rng.integers(0, 100, (3, 4, 5)).astype(np.int16)
    write_series(tmp_path / "ct", stored, modality="CT", spacing_mm=(1.0, 1.0, 2.0), origin_mm=(1.0, 2.0, 3.0),
                 orientation=orientation)
    image = io.read_image(tmp_path / "ct")
    direction = np.array(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction[:, 0], orientation[:3], atol=1e-5)
    np.testing.assert_allclose(direction[:, 1], orientation[3:], atol=1e-5)


def test_series_choice_and_errors(tmp_path, rng):
    stored = rng.integers(0, 100, (2, 4, 4)).astype(np.int16)
    write_series(tmp_path / "two", stored, modality="CT", spacing_mm=(1, 1, 1), origin_mm=(0, 0, 0))
    second = write_series(tmp_path / "two", stored, modality="CT", spacing_mm=(1, 1, 1), origin_mm=(0, 0, 50),
                          prefix="other")
    with pytest.raises(ValueError, match="holds 2 series"):
        io.read_dicom_series(tmp_path / "two")
    uid = pydicom.dcmread(second[0]).SeriesInstanceUID
    image = io.read_dicom_series(tmp_path / "two", series_uid=uid)
    assert image.GetSize() == (4, 4, 2)
    assert image.GetOrigin() == pytest.approx((0.0, 0.0, 50.0))
    with pytest.raises(ValueError, match="series_uid"):
        io.read_dicom_series(tmp_path / "two", series_uid="1.2.3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no DICOM image series"):
        io.read_dicom_series(tmp_path / "empty")
    write_series(tmp_path / "pt", stored, modality="PT", spacing_mm=(1, 1, 1), origin_mm=(0, 0, 0), units="WEIRD")
    with pytest.raises(ValueError, match=r"Units \(0054,1001\)"):
        io.read_dicom_series(tmp_path / "pt")


def test_nm_tomographic_multiframe(tmp_path, rng):
    stored = rng.integers(0, 5000, (6, 8, 7)).astype(np.uint16)
    path = write_nm_tomographic(tmp_path / "nm" / "recon.dcm", stored, (4.8, 4.8, 4.8), (-100.0, -120.0, -50.0),
                                slope=0.5)
    image = io.read_image(path.parent)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), stored * 0.5)
    assert image.GetSpacing() == pytest.approx((4.8, 4.8, 4.8))
    assert image.GetOrigin() == pytest.approx((-100.0, -120.0, -50.0))
    assert image.GetMetaData(UNIT_KEY) == "counts"
    dataset = pydicom.dcmread(path)
    del dataset.DetectorInformationSequence[0].ImagePositionPatient
    dataset.save_as(path)
    with pytest.raises(ValueError, match=r"DetectorInformationSequence \(0054,0022\)"):
        io.read_image(path.parent)


@pytest.fixture
def planar_counts(rng):
    return rng.poisson(40.0, (64, 24)), rng.poisson(25.0, (64, 24))


def test_planar_multiframe_round_trip_is_exact(tmp_path, planar_counts):
    anterior, posterior = planar_counts
    path = io.write_planar_dicom(anterior, posterior, tmp_path / "wb.dcm", (4.8, 4.4), 480.0)
    pair = io.read_planar(path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(pair.anterior.image), anterior)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(pair.posterior.image), posterior)
    assert pair.anterior.image.GetSpacing() == (4.4, 4.8)
    assert pair.anterior.frame_duration_s == 480.0
    assert pair.anterior.total_counts == anterior.sum()
    assert pair.posterior.count_rate_cps == pytest.approx(posterior.sum() / 480.0)
    stored = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(stored[1], posterior[:, ::-1])


def _split_into_two_files(path, folder):
    """Two single-view NM files (top-level ViewCodeSequence) from one two-frame file."""
    dataset = pydicom.dcmread(path)
    frames = dataset.pixel_array
    paths = []
    for index, item in enumerate(dataset.DetectorInformationSequence):
        single = pydicom.dcmread(path)
        del single.DetectorInformationSequence, single.DetectorVector
        single.NumberOfFrames = 1
        single.ViewCodeSequence = item.ViewCodeSequence
        single.PixelData = frames[index].tobytes()
        paths.append(folder / f"view{index}.dcm")
        single.save_as(paths[-1])
    return paths


def test_planar_two_files_in_any_order(tmp_path, planar_counts):
    anterior, posterior = planar_counts
    path = io.write_planar_dicom(anterior, posterior, tmp_path / "wb.dcm", (4.8, 4.4), 300.0)
    first, second = _split_into_two_files(path, tmp_path)
    pair = io.read_planar([second, first])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(pair.anterior.image), anterior)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(pair.posterior.image), posterior)


def _modified(path, change, tmp_path):
    dataset = pydicom.dcmread(path)
    change(dataset)
    out = tmp_path / "modified.dcm"
    dataset.save_as(out, enforce_file_format=False)
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: [delattr(item, "ViewCodeSequence") for item in d.DetectorInformationSequence],
         r"ViewCodeSequence \(0054,0220\)"),
        (lambda d: delattr(d, "DetectorInformationSequence"), r"ViewCodeSequence \(0054,0220\)"),
        (lambda d: delattr(d, "PixelSpacing"), r"PixelSpacing \(0028,0030\)"),
        (lambda d: delattr(d, "ActualFrameDuration"), r"ActualFrameDuration \(0018,1242\)"),
        (lambda d: setattr(d, "SOPClassUID", SECONDARY_CAPTURE), r"Secondary Capture"),
        (lambda d: setattr(d, "Modality", "CT"), r"Modality \(0008,0060\)"),
        (lambda d: setattr(d.DetectorInformationSequence[1].ViewCodeSequence[0], "CodeValue", "399348003"),
         "more than one anterior"),
        (lambda d: setattr(d.DetectorInformationSequence[0].ViewCodeSequence[0], "CodeValue", "12345")
         or setattr(d.DetectorInformationSequence[0].ViewCodeSequence[0], "CodeMeaning", "lateral"),
         "neither anterior nor posterior"),
        (lambda d: setattr(d, "RescaleSlope", "0"), r"RescaleSlope \(0028,1053\): 0"),
        (lambda d: setattr(d, "RescaleSlope", "-1"), r"RescaleSlope \(0028,1053\): -1"),
        (lambda d: setattr(d, "RescaleIntercept", "-100000"), "negative counts"),
    ],
)
def test_planar_incomplete_files_name_the_missing_tag(tmp_path, planar_counts, change, message):
    path = io.write_planar_dicom(*planar_counts, tmp_path / "wb.dcm", (4.8, 4.4), 300.0)
    with pytest.raises(ValueError, match=message):
        io.read_planar(_modified(path, change, tmp_path))


def test_planar_compressed_pixel_data_without_decoder(tmp_path, planar_counts):
    def to_jpeg2000(dataset):
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
        dataset.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 32] * 2)

    path = io.write_planar_dicom(*planar_counts, tmp_path / "wb.dcm", (4.8, 4.4), 300.0)
    with pytest.raises(ValueError, match=r"PixelData \(7FE0,0010\).*JPEG 2000"):
        io.read_planar(_modified(path, to_jpeg2000, tmp_path))


def test_planar_bad_arguments(tmp_path, planar_counts):
    anterior, posterior = planar_counts
    with pytest.raises(ValueError, match="one multi-frame file or two"):
        io.read_planar([])
    (tmp_path / "junk.dcm").write_bytes(b"not dicom at all")
    with pytest.raises(ValueError, match="not a readable DICOM"):
        io.read_planar(tmp_path / "junk.dcm")
    with pytest.raises(ValueError, match="posterior_counts"):
        io.write_planar_dicom(anterior, posterior[:10], tmp_path / "x.dcm", (4.8, 4.4), 300.0)
    with pytest.raises(ValueError, match="anterior_counts"):
        io.write_planar_dicom(anterior - 100, posterior, tmp_path / "x.dcm", (4.8, 4.4), 300.0)
    with pytest.raises(ValueError, match="whole numbers"):
        io.write_planar_dicom(anterior + 0.5, posterior, tmp_path / "x.dcm", (4.8, 4.4), 300.0)


def test_planar_volume_is_a_coronal_slice(planar_counts):
    view = sitk.GetImageFromArray(planar_counts[0].astype(np.float32))
    view.SetSpacing((4.4, 4.8))
    view.SetMetaData(UNIT_KEY, "counts")
    volume = io.planar_volume(view)
    assert volume.GetSize() == (24, 64, 1)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume)[0], planar_counts[0])
    # column index runs to the patient's left (+x), row index to the feet (-z)
    first, right = volume.TransformIndexToPhysicalPoint((0, 0, 0)), volume.TransformIndexToPhysicalPoint((1, 0, 0))
    below = volume.TransformIndexToPhysicalPoint((0, 1, 0))
    assert np.subtract(right, first) == pytest.approx((4.4, 0.0, 0.0))
    assert np.subtract(below, first) == pytest.approx((0.0, 0.0, -4.8))
    centre = volume.TransformContinuousIndexToPhysicalPoint((11.5, 31.5, 0.0))
    assert centre == pytest.approx((0.0, 0.0, 0.0))
    assert volume.GetMetaData(UNIT_KEY) == "counts"
    with pytest.raises(ValueError, match="2D"):
        io.planar_volume(volume)


def test_series_with_duplicate_or_missing_positions(tmp_path, rng):
    stored = rng.integers(0, 100, (2, 4, 4)).astype(np.int16)
    paths = write_series(tmp_path / "dup", stored, modality="CT", spacing_mm=(1, 1, 0.0), origin_mm=(0, 0, 0))
    with pytest.raises(ValueError, match="same position"):
        io.read_dicom_series(tmp_path / "dup")
    dataset = pydicom.dcmread(paths[0])
    del dataset.ImagePositionPatient
    dataset.save_as(paths[0])
    with pytest.raises(ValueError, match=r"ImagePositionPatient \(0020,0032\)"):
        io.read_dicom_series(tmp_path / "dup")
