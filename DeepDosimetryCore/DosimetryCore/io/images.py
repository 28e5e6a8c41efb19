"""Reading and writing images: NRRD, NIfTI, MHA, DICOM series and NM planar ANT/POST pairs.

Volumes are read with SimpleITK; DICOM rescale slope/intercept is applied and the unit of the
voxel values is kept in the image metadata (:data:`DosimetryCore.core.volume.UNIT_KEY`).
Planar scintigraphy (NM Image Storage with anterior and posterior views) is read with pydicom,
because its view identification lives in sequences SimpleITK does not interpret.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from DosimetryCore.core.acquisition_time import set_acquisition_datetime
from DosimetryCore.core.metadata import FRAME_DURATION_KEY, MODALITY_KEY, QUANTITY_KEY, SOURCE_KEY, UNIT_KEY
from DosimetryCore.core.volume import require_image
from DosimetryCore.io.dicom_time import series_acquisition_datetime
from DosimetryCore.io.outputs import atomic_path, format_suffix

VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
"""File name endings :func:`read_image` and :func:`write_image` accept for volumes."""


SECONDARY_CAPTURE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
}

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"

# View codes of DICOM CID 26 "Nuclear Medicine Projection" (PS3.16), with the legacy SNOMED-RT
# values some cameras still write, and the plain SNOMED CT anterior/posterior qualifiers.
_ANTERIOR_CODES = {"399348003", "R-10206", "255549009"}
_POSTERIOR_CODES = {"272479007", "R-10214", "255551008"}

# PET "Units" (0054,1001) defined terms (PS3.3 C.8.9.1.1.3) mapped to the unit names we use.
_PET_UNITS = {"BQML": "Bq/mL", "CNTS": "counts", "GML": "g/mL", "PROPCNTS": "proportional counts", "NONE": ""}


def read_image(path: str | os.PathLike) -> sitk.Image:
    """Read a volume from NRRD, NIfTI or MHA, or a DICOM series from a folder.

    A folder is read with :func:`read_dicom_series`. Metadata written by :func:`write_image`
    (unit, quantity, provenance) comes back with NRRD and MHA files.
    """
    path = Path(path)
    if path.is_dir():
        return read_dicom_series(path)
    if not path.is_file():
        raise ValueError(f"path: {path} does not exist")
    if format_suffix(path).lower() not in VOLUME_SUFFIXES:
        raise ValueError(f"path: {path.name} is not one of the volume formats {', '.join(VOLUME_SUFFIXES)}")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise ValueError(f"path: {path} could not be read as an image ({error})") from error


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write ``image`` to NRRD, NIfTI or MHA (chosen by the file name); return the path.

    NRRD and MHA keep the metadata dictionary (unit, quantity, provenance); NIfTI cannot hold it.
    Parent folders are created; the file is written under a temporary name and renamed at the end
    (:func:`DosimetryCore.io.outputs.atomic_path`), so an interrupted write leaves no partial file.
    """
    require_image(image, "image", dimension=None)
    path = Path(path)
    if format_suffix(path).lower() not in VOLUME_SUFFIXES:
        raise ValueError(f"path: {path.name} is not one of the volume formats {', '.join(VOLUME_SUFFIXES)}")
    with atomic_path(path) as temporary:
        sitk.WriteImage(image, str(temporary), compress)
    return path


def _unit_for(header: pydicom.Dataset) -> tuple[str, str]:
    """(unit, quantity) of the rescaled voxel values of a CT, PT or NM image."""
    modality = str(header.get("Modality", "")).upper()
    if modality == "CT":
        return "HU", "CT number"
    if modality == "PT":
        units = str(header.get("Units", "")).upper()
        if units not in _PET_UNITS:
            raise ValueError(f"Units (0054,1001): PET unit {units!r} is not one of {sorted(_PET_UNITS)}")
        quantity = "activity concentration" if units == "BQML" else "PET value"
        return _PET_UNITS[units], quantity
    if modality == "NM":
        units = str(header.get("Units", "")).upper()
        if units in _PET_UNITS and units:
            return _PET_UNITS[units], "NM value"
        return "counts", "NM counts"
    raise ValueError(f"Modality (0008,0060): {modality or 'missing'}; expected CT, PT or NM")


def _series_in(folder: Path) -> dict[str, list[tuple[str, pydicom.Dataset]]]:
    """DICOM image files in ``folder`` (not recursive) grouped by SeriesInstanceUID."""
    series: dict[str, list[tuple[str, pydicom.Dataset]]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            header = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
        if "SeriesInstanceUID" in header and "Rows" in header:
            series.setdefault(str(header.SeriesInstanceUID), []).append((str(path), header))
    return series


def _sorted_slices(files: list[tuple[str, pydicom.Dataset]], series_uid: str) -> list[str]:
    """Slice files ordered by position along the slice normal (what a series sorter does)."""
    positions = []
    for path, header in files:
        if "ImagePositionPatient" not in header or "ImageOrientationPatient" not in header:
            raise ValueError(f"ImagePositionPatient (0020,0032): missing in {path} of series {series_uid}")
        orientation = np.array(header.ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        positions.append(float(np.dot(normal, np.array(header.ImagePositionPatient, dtype=float))))
    if len(set(np.round(positions, 4))) != len(positions):
        raise ValueError(f"ImagePositionPatient (0020,0032): series {series_uid} has slices at the same position")
    return [files[i][0] for i in np.argsort(positions)]


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> sitk.Image:
    """Read a CT, PET or tomographic NM DICOM series from ``folder`` into a float32 volume.

    Slices are ordered by position along the slice normal. Rescale slope and intercept are
    applied slice by slice (the output is float32, so per-slice PET scale factors are never
    truncated). The unit goes into :data:`UNIT_KEY`: HU for CT, the PET ``Units`` (e.g. Bq/mL)
    for PT, counts or the stated unit for NM; the acquisition time, when the headers give it, into
    ``ACQUISITION_DATETIME_KEY`` (:mod:`DosimetryCore.io.dicom_time`). When the folder holds several series,
    ``series_uid`` picks one; otherwise that is an error naming the UIDs. A multi-frame NM
    tomographic image (one file) is read with its frames as slices.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder: {folder} is not a folder")
    series = _series_in(folder)
    if not series:
        raise ValueError(f"folder: {folder} holds no DICOM image series")
    if series_uid is None:
        if len(series) > 1:
            raise ValueError(f"series_uid: {folder} holds {len(series)} series ({', '.join(series)}); choose one")
        series_uid = next(iter(series))
    elif series_uid not in series:
        raise ValueError(f"series_uid: {series_uid} is not in {folder}")
    files = series[series_uid]
    first_path, header = files[0]
    if str(header.get("SOPClassUID", "")) in SECONDARY_CAPTURE_SOP_CLASSES:
        raise ValueError(f"SOPClassUID (0008,0016): {first_path} is a Secondary Capture, which has no geometry")
    unit, quantity = _unit_for(header)
    if str(header.get("Modality", "")).upper() == "NM":
        if len(files) != 1:
            raise ValueError(f"folder: NM series {series_uid} has {len(files)} files; expected one multi-frame file")
        image = _read_nm_tomographic(first_path)
    else:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(_sorted_slices(files, series_uid))
        reader.SetOutputPixelType(sitk.sitkFloat32)
        try:
            image = reader.Execute()
        except RuntimeError as error:
            raise ValueError(f"folder: series {series_uid} could not be read ({error})") from error
    image.SetMetaData(UNIT_KEY, unit)
    image.SetMetaData(QUANTITY_KEY, quantity)
    image.SetMetaData(MODALITY_KEY, str(header.get("Modality", "")).upper())
    acquired = series_acquisition_datetime(h for _, h in files)
    if acquired is not None:
        set_acquisition_datetime(image, acquired)
    return image


def _read_nm_tomographic(path: str) -> sitk.Image:
    """A reconstructed NM multi-frame file (frames = slices) as a float32 volume in LPS."""
    dataset = _read_dataset(path)
    frames = _pixel_frames(dataset, path)
    slope = float(dataset.get("RescaleSlope", 1.0))
    intercept = float(dataset.get("RescaleIntercept", 0.0))
    values = frames.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    detector = dataset.get("DetectorInformationSequence")
    if not detector or "ImagePositionPatient" not in detector[0] or "ImageOrientationPatient" not in detector[0]:
        raise ValueError(
            f"DetectorInformationSequence (0054,0022): {path} gives no ImagePositionPatient/ImageOrientationPatient"
        )
    row_spacing, column_spacing = _pixel_spacing(dataset, path)
    slice_spacing = dataset.get("SpacingBetweenSlices", dataset.get("SliceThickness"))
    if slice_spacing is None:
        raise ValueError(f"SpacingBetweenSlices (0018,0088): missing in {path}")
    row_cosine, column_cosine = np.array(detector[0].ImageOrientationPatient, dtype=float).reshape(2, 3)
    normal = np.cross(row_cosine, column_cosine)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((column_spacing, row_spacing, abs(float(slice_spacing))))
    image.SetOrigin([float(v) for v in detector[0].ImagePositionPatient])
    image.SetDirection(np.column_stack([row_cosine, column_cosine, normal]).ravel().tolist())
    return image


def _read_dataset(path: str | os.PathLike) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(str(path))
    except (pydicom.errors.InvalidDicomError, OSError) as error:
        raise ValueError(f"path: {path} is not a readable DICOM file ({error})") from error


def _pixel_spacing(dataset: pydicom.Dataset, path: str | os.PathLike) -> tuple[float, float]:
    """(row spacing, column spacing) in mm from PixelSpacing (0028,0030)."""
    spacing = dataset.get("PixelSpacing")
    if spacing is None or len(spacing) != 2 or min(float(s) for s in spacing) <= 0:
        raise ValueError(f"PixelSpacing (0028,0030): missing or invalid in {path}")
    return float(spacing[0]), float(spacing[1])


def _pixel_frames(dataset: pydicom.Dataset, path: str | os.PathLike) -> np.ndarray:
    """Pixel data as an array (frames, rows, columns); a clear error when it cannot be decoded."""
    if "PixelData" not in dataset:
        raise ValueError(f"PixelData (7FE0,0010): missing in {path}")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises RuntimeError/NotImplementedError per missing plugin
        syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(syntax, "name", str(syntax))
        raise ValueError(
            f"PixelData (7FE0,0010): cannot decode {path} with transfer syntax {name} ({error}); "
            "install a decoder plugin for it (e.g. pylibjpeg) or decompress the file"
        ) from error
    return pixels[np.newaxis] if pixels.ndim == 2 else pixels


@dataclass
class PlanarView:
    """One planar scintigraphy view.

    ``image`` is a 2D float32 SimpleITK image of counts per pixel, shape (rows, columns) as
    (y, x) with spacing (column, row) in mm, carrying the frame duration and the source file in its
    metadata. ``frame_duration_s`` is the acquisition time.
    """

    image: sitk.Image
    view: str
    frame_duration_s: float
    source: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def total_counts(self) -> float:
        """Sum of counts over the whole view."""
        return float(sitk.GetArrayViewFromImage(self.image).sum(dtype=np.float64))

    @property
    def count_rate_cps(self) -> float:
        """Total count rate (counts/s): total counts over frame duration."""
        return self.total_counts / self.frame_duration_s


@dataclass
class PlanarPair:
    """Anterior and posterior views of one whole-body or spot acquisition.

    The posterior image is mirrored left-right into the anterior's orientation, so that column j
    of both images sees the same patient side (a posterior camera sees the patient mirrored).
    """

    anterior: PlanarView
    posterior: PlanarView


def _view_of(item: pydicom.Dataset, where: str) -> str:
    """'anterior' or 'posterior' from the ViewCodeSequence in ``item``."""
    codes = item.get("ViewCodeSequence")
    if not codes:
        raise ValueError(f"ViewCodeSequence (0054,0220): missing in {where}; cannot tell anterior from posterior")
    code = codes[0]
    value = str(code.get("CodeValue", ""))
    meaning = str(code.get("CodeMeaning", "")).lower()
    if value in _ANTERIOR_CODES or meaning in {"antero-posterior", "anterior"}:
        return "anterior"
    if value in _POSTERIOR_CODES or meaning in {"postero-anterior", "posterior"}:
        return "posterior"
    raise ValueError(
        f"ViewCodeSequence (0054,0220): view {value!r} ({meaning!r}) in {where} is neither anterior nor posterior"
    )


def _frame_duration_s(dataset: pydicom.Dataset, path: str | os.PathLike) -> float:
    duration = dataset.get("ActualFrameDuration")
    if duration is None or float(duration) <= 0:
        raise ValueError(f"ActualFrameDuration (0018,1242): missing or not positive in {path}")
    return float(duration) / 1000.0


def _planar_views(path: str | os.PathLike) -> list[PlanarView]:
    dataset = _read_dataset(path)
    sop_class = str(dataset.get("SOPClassUID", ""))
    if sop_class in SECONDARY_CAPTURE_SOP_CLASSES:
        raise ValueError(f"SOPClassUID (0008,0016): {path} is a Secondary Capture, which carries no counts or views")
    if str(dataset.get("Modality", "")).upper() != "NM":
        raise ValueError(f"Modality (0008,0060): {path} is {dataset.get('Modality', 'missing')}, expected NM")
    row_spacing, column_spacing = _pixel_spacing(dataset, path)
    duration_s = _frame_duration_s(dataset, path)
    frames = _pixel_frames(dataset, path)
    detector_items = dataset.get("DetectorInformationSequence")
    if "ViewCodeSequence" in dataset and frames.shape[0] == 1:
        views = [_view_of(dataset, str(path))]
    elif detector_items:
        detector_vector = dataset.get("DetectorVector", list(range(1, frames.shape[0] + 1)))
        if len(detector_vector) != frames.shape[0]:
            raise ValueError(
                f"DetectorVector (0054,0020): {len(detector_vector)} entries for {frames.shape[0]} frames in {path}"
            )
        views = []
        for frame, detector in enumerate(detector_vector):
            if not 1 <= int(detector) <= len(detector_items):
                raise ValueError(f"DetectorVector (0054,0020): frame {frame} names detector {detector} in {path}")
            views.append(_view_of(detector_items[int(detector) - 1], f"{path} detector {detector}"))
    else:
        raise ValueError(
            f"ViewCodeSequence (0054,0220): {path} has neither a view code nor a DetectorInformationSequence "
            "(0054,0022) with one; cannot tell anterior from posterior"
        )
    slope = float(dataset.get("RescaleSlope", 1.0))
    intercept = float(dataset.get("RescaleIntercept", 0.0))
    if not (np.isfinite(slope) and slope > 0 and np.isfinite(intercept)):
        raise ValueError(
            f"RescaleSlope (0028,1053): {slope:g} (intercept {intercept:g}) in {path} would turn the counts into "
            "zeros or negative values; a planar count image needs a positive slope"
        )
    metadata = {
        key: str(dataset.get(key, ""))
        for key in ("PatientID", "StudyDate", "SeriesDescription", "Manufacturer", "SeriesInstanceUID")
    }
    result = []
    for frame, view in zip(frames, views, strict=True):
        counts = frame.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        if counts.min() < 0:
            raise ValueError(
                f"{path}: the {view} view holds negative counts (minimum {counts.min():g}); not a count image"
            )
        image = sitk.GetImageFromArray(counts)
        image.SetSpacing((column_spacing, row_spacing))
        image.SetMetaData(UNIT_KEY, "counts")
        image.SetMetaData(QUANTITY_KEY, f"planar {view} counts")
        image.SetMetaData(FRAME_DURATION_KEY, f"{duration_s:g}")
        image.SetMetaData(SOURCE_KEY, str(path))
        result.append(PlanarView(image, view, duration_s, str(path), metadata))
    return result


def read_planar(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> PlanarPair:
    """Read anterior and posterior planar NM views from one multi-frame file or two files.

    Views are identified by the ViewCodeSequence (0054,0220) of each frame's detector item in
    the DetectorInformationSequence (0054,0022), or at the top level of a single-frame file.
    Counts are the stored pixel values with rescale applied; pixel spacing comes from
    PixelSpacing (0028,0030) in mm, the frame duration from ActualFrameDuration (0018,1242).
    The posterior view is mirrored left-right into the anterior's orientation.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not 1 <= len(paths) <= 2:
        raise ValueError(f"paths: expected one multi-frame file or two files, got {len(paths)}")
    views = [view for path in paths for view in _planar_views(path)]
    by_name: dict[str, PlanarView] = {}
    for view in views:
        if view.view in by_name:
            raise ValueError(f"paths: more than one {view.view} view in {', '.join(str(p) for p in paths)}")
        by_name[view.view] = view
    missing = {"anterior", "posterior"} - set(by_name)
    if missing:
        raise ValueError(f"paths: no {' or '.join(sorted(missing))} view found in {', '.join(str(p) for p in paths)}")
    anterior, posterior = by_name["anterior"], by_name["posterior"]
    if anterior.image.GetSize() != posterior.image.GetSize():
        raise ValueError(
            f"paths: anterior size {anterior.image.GetSize()} differs from posterior {posterior.image.GetSize()}"
        )
    mirrored = sitk.GetImageFromArray(sitk.GetArrayViewFromImage(posterior.image)[:, ::-1].copy())
    mirrored.CopyInformation(posterior.image)
    for key in posterior.image.GetMetaDataKeys():
        mirrored.SetMetaData(key, posterior.image.GetMetaData(key))
    posterior.image = mirrored
    return PlanarPair(anterior, posterior)


def planar_volume(view: sitk.Image) -> sitk.Image:
    """A 2D planar view (rows, columns) as a one-slice 3D volume in the coronal plane, for display.

    Columns run toward the patient's left (+x in LPS), rows toward the feet (-z), and the slice
    normal is posterior (+y), which is how an anterior view is looked at. The image is centred
    on the origin; the slice thickness is set to the column spacing. Metadata are kept.
    """
    require_image(view, "view", dimension=2)
    column_spacing, row_spacing = view.GetSpacing()
    rows, columns = view.GetHeight(), view.GetWidth()
    volume = sitk.GetImageFromArray(sitk.GetArrayFromImage(view)[np.newaxis])
    volume.SetSpacing((column_spacing, row_spacing, column_spacing))
    volume.SetDirection((1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0))
    volume.SetOrigin((-(columns - 1) * column_spacing / 2.0, 0.0, (rows - 1) * row_spacing / 2.0))
    for key in view.GetMetaDataKeys():
        volume.SetMetaData(key, view.GetMetaData(key))
    return volume


def write_planar_dicom(
    anterior_counts: np.ndarray,
    posterior_counts: np.ndarray,
    path: str | os.PathLike,
    pixel_spacing_mm: tuple[float, float],
    frame_duration_s: float,
    patient_id: str = "DEEPDOSIMETRY",
    series_description: str = "177Lu planar ANT/POST",
) -> Path:
    """Write an anterior/posterior pair as one multi-frame NM Image Storage file (whole body).

    ``anterior_counts`` and ``posterior_counts`` are integer counts of shape (rows, columns),
    the posterior in the anterior's left-right orientation (as :func:`read_planar` returns it);
    it is stored as the posterior camera sees it. ``pixel_spacing_mm`` is (row, column) spacing.
    Frames carry DetectorVector [1, 2] and a DetectorInformationSequence whose items hold the
    CID 26 view codes antero-posterior (SCT 399348003) and postero-anterior (SCT 272479007).
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    frames = []
    for name, counts in (("anterior_counts", anterior_counts), ("posterior_counts", posterior_counts)):
        counts = np.asarray(counts)
        if counts.ndim != 2:
            raise ValueError(f"{name}: expected a 2D (rows, columns) array, got shape {counts.shape}")
        if not np.all(np.isfinite(counts)) or counts.min() < 0 or counts.max() > 65535:
            raise ValueError(f"{name}: counts must be finite and within 0..65535 for 16-bit NM pixel data")
        if not np.array_equal(counts, np.round(counts)):
            raise ValueError(f"{name}: counts must be whole numbers")
        frames.append(counts.astype(np.uint16))
    if frames[0].shape != frames[1].shape:
        raise ValueError(f"posterior_counts: shape {frames[1].shape} differs from anterior {frames[0].shape}")
    if frame_duration_s <= 0 or min(pixel_spacing_mm) <= 0:
        raise ValueError("frame_duration_s and pixel_spacing_mm must be positive")
    frames[1] = frames[1][:, ::-1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = NM_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = NM_IMAGE_STORAGE
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.Modality = "NM"
    dataset.PatientID = patient_id
    dataset.SeriesDescription = series_description
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]
    dataset.NumberOfFrames = 2
    dataset.FrameIncrementPointer = [pydicom.tag.Tag("DetectorVector")]
    dataset.DetectorVector = [1, 2]
    dataset.NumberOfDetectors = 2
    items = []
    for code in ("399348003", "272479007"):
        view = pydicom.Dataset()
        view.CodeValue = code
        view.CodingSchemeDesignator = "SCT"
        view.CodeMeaning = "antero-posterior" if code == "399348003" else "postero-anterior"
        item = pydicom.Dataset()
        item.ViewCodeSequence = [view]
        items.append(item)
    dataset.DetectorInformationSequence = items
    dataset.PixelSpacing = [f"{pixel_spacing_mm[0]:g}", f"{pixel_spacing_mm[1]:g}"]
    dataset.ActualFrameDuration = int(round(frame_duration_s * 1000))
    dataset.Rows, dataset.Columns = frames[0].shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.PixelData = np.stack(frames).tobytes()
    dataset.save_as(str(path), enforce_file_format=True)
    return path
