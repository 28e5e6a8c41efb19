"""Builders of standards-shaped DICOM test files with pydicom (CT, PET, NM tomographic, NM planar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def base_dataset(sop_class: str, modality: str) -> pydicom.Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = modality
    dataset.PatientID = "TEST"
    dataset.StudyInstanceUID = generate_uid()
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    return dataset


def write_series(
    folder: Path,
    stored: np.ndarray,
    *,
    modality: str,
    spacing_mm: tuple[float, float, float],
    origin_mm: tuple[float, float, float],
    orientation: tuple[float, ...] = (1, 0, 0, 0, 1, 0),
    slopes: list[float] | None = None,
    intercept: float = 0.0,
    units: str | None = None,
    prefix: str = "slice",
) -> list[Path]:
    """Write ``stored`` (slices, rows, columns; int16) as one CT or PT file per slice.

    Slice k sits at origin + k * spacing_z along the orientation's normal; ``slopes`` gives each
    slice's RescaleSlope (PET writes one per slice).
    """
    folder.mkdir(parents=True, exist_ok=True)
    row, column = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row, column)
    series_uid = generate_uid()
    frame_of_reference_uid = generate_uid()
    study_uid = generate_uid()
    sop_class = CT_IMAGE_STORAGE if modality == "CT" else PET_IMAGE_STORAGE
    paths = []
    for index, pixels in enumerate(stored):
        dataset = base_dataset(sop_class, modality)
        dataset.StudyInstanceUID = study_uid
        dataset.SeriesInstanceUID = series_uid
        dataset.FrameOfReferenceUID = frame_of_reference_uid
        dataset.InstanceNumber = index + 1
        position = np.array(origin_mm) + index * spacing_mm[2] * normal
        dataset.ImagePositionPatient = [f"{v:.6f}" for v in position]
        dataset.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        dataset.PixelSpacing = [f"{spacing_mm[1]:g}", f"{spacing_mm[0]:g}"]
        dataset.SliceThickness = f"{spacing_mm[2]:g}"
        dataset.Rows, dataset.Columns = pixels.shape
        dataset.BitsAllocated = 16
        dataset.BitsStored = 16
        dataset.HighBit = 15
        dataset.PixelRepresentation = 1
        dataset.RescaleSlope = f"{(slopes[index] if slopes else 1.0):.8g}"
        dataset.RescaleIntercept = f"{intercept:g}"
        if units:
            dataset.Units = units
        dataset.PixelData = pixels.astype(np.int16).tobytes()
        path = folder / f"{prefix}{index:03d}.dcm"
        dataset.save_as(str(path), enforce_file_format=True)
        paths.append(path)
    return paths


def write_nm_tomographic(
    path: Path, stored: np.ndarray, spacing_mm: tuple[float, float, float], origin_mm: tuple[float, float, float],
    slope: float = 1.0,
) -> Path:
    """A reconstructed NM multi-frame image (frames = slices), geometry in the detector item."""
    dataset = base_dataset(NM_IMAGE_STORAGE, "NM")
    dataset.SeriesInstanceUID = generate_uid()
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    dataset.NumberOfFrames = stored.shape[0]
    dataset.FrameIncrementPointer = [pydicom.tag.Tag("SliceVector")]
    dataset.SliceVector = list(range(1, stored.shape[0] + 1))
    detector = pydicom.Dataset()
    detector.ImagePositionPatient = [f"{v:g}" for v in origin_mm]
    detector.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    dataset.DetectorInformationSequence = [detector]
    dataset.PixelSpacing = [f"{spacing_mm[1]:g}", f"{spacing_mm[0]:g}"]
    dataset.SpacingBetweenSlices = f"{spacing_mm[2]:g}"
    dataset.RescaleSlope = f"{slope:g}"
    dataset.Rows, dataset.Columns = stored.shape[1:]
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.PixelData = stored.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(str(path), enforce_file_format=True)
    return path
