"""Image geometry: SimpleITK images are the in-memory currency of DeepDosimetry.

Conventions used throughout the project:

- A 3D image is a :class:`SimpleITK.Image` in the LPS patient frame (ITK/DICOM convention):
  spacing and origin in mm, direction a 3x3 row-major cosine matrix.
- Its voxel array (``array_from_image``) has shape ``(z, y, x)`` (slowest axis first), the order
  torch uses for ``(D, H, W)``.
- Activity concentration is in Bq/mL, dose rate in Gy/h; the unit travels in the image metadata
  under :data:`UNIT_KEY`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.metadata import QUANTITY_KEY, UNIT_KEY

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
}


def require_image(image: object, name: str, dimension: int | None = 3) -> sitk.Image:
    """Return ``image`` if it is a SimpleITK image of ``dimension``, else raise a ValueError naming it."""
    if not isinstance(image, sitk.Image):
        raise ValueError(f"{name}: expected a SimpleITK.Image, got {type(image).__name__}")
    if dimension is not None and image.GetDimension() != dimension:
        raise ValueError(f"{name}: expected a {dimension}D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{name}: expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components")
    return image


def array_from_image(image: sitk.Image) -> np.ndarray:
    """Voxel values as a new numpy array of shape ``(z, y, x)`` (2D images: ``(y, x)``)."""
    return sitk.GetArrayFromImage(require_image(image, "image", dimension=None))


def image_from_array(
    array: np.ndarray,
    reference: sitk.Image | None = None,
    *,
    spacing: Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
    direction: Sequence[float] | None = None,
    unit: str | None = None,
) -> sitk.Image:
    """Build an image from an array of shape ``(z, y, x)`` (or ``(y, x)``).

    Geometry is copied from ``reference`` when given (its size must match the array) and then
    overridden by any of ``spacing`` (mm), ``origin`` (mm) and ``direction`` given explicitly.
    ``unit`` is stored under :data:`UNIT_KEY`; without it the reference's unit is kept.
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"array: expected a 2D or 3D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise ValueError(f"array: expected numeric values, got dtype {array.dtype}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    if reference is not None:
        require_image(reference, "reference", dimension=array.ndim)
        if tuple(reference.GetSize()) != tuple(reversed(array.shape)):
            raise ValueError(
                f"array: shape {array.shape} (z, y, x) does not match reference size "
                f"{reference.GetSize()} (x, y, z)"
            )
        image.CopyInformation(reference)
        if reference.HasMetaDataKey(UNIT_KEY) and unit is None:
            unit = reference.GetMetaData(UNIT_KEY)
    if spacing is not None:
        if len(spacing) != array.ndim or min(spacing) <= 0:
            raise ValueError(f"spacing: expected {array.ndim} positive values in mm, got {tuple(spacing)}")
        image.SetSpacing([float(s) for s in spacing])
    if origin is not None:
        image.SetOrigin([float(o) for o in origin])
    if direction is not None:
        image.SetDirection([float(d) for d in direction])
    if unit is not None:
        image.SetMetaData(UNIT_KEY, unit)
    return image


def set_unit(image: sitk.Image, unit: str, quantity: str | None = None) -> sitk.Image:
    """Record the physical unit (and optionally the quantity) of ``image``'s values in place."""
    image.SetMetaData(UNIT_KEY, unit)
    if quantity is not None:
        image.SetMetaData(QUANTITY_KEY, quantity)
    return image


def unit_of(image: sitk.Image) -> str | None:
    """The unit recorded under :data:`UNIT_KEY`, or None when the image carries none."""
    return image.GetMetaData(UNIT_KEY) if image.HasMetaDataKey(UNIT_KEY) else None


def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel in mL (cm^3), from the spacing in mm."""
    return float(np.prod(image.GetSpacing())) / 1000.0


def with_total_of(moved: sitk.Image, original: sitk.Image) -> sitk.Image:
    """``moved`` (a resampled concentration) scaled so that its sum x voxel volume equals ``original``'s: what
    resampling an extensive quantity such as activity must keep. Unchanged when ``moved`` sums to zero."""
    before = float(array_from_image(original).sum(dtype=np.float64)) * float(np.prod(original.GetSpacing()))
    after = float(array_from_image(moved).sum(dtype=np.float64)) * float(np.prod(moved.GetSpacing()))
    return moved * (before / after) if after > 0 else moved


def same_geometry(a: sitk.Image, b: sitk.Image, tolerance_mm: float = 1e-3) -> bool:
    """True when ``a`` and ``b`` share size, spacing, origin (within ``tolerance_mm``) and direction."""
    return (
        a.GetDimension() == b.GetDimension()
        and a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance_mm)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance_mm)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
    )


def require_same_geometry(image: sitk.Image, reference: sitk.Image, name: str, reference_name: str) -> None:
    """Raise a ValueError naming both inputs when their grids differ."""
    if not same_geometry(image, reference):
        raise ValueError(
            f"{name}: geometry differs from {reference_name} (size {image.GetSize()} vs "
            f"{reference.GetSize()}, spacing {tuple(round(s, 4) for s in image.GetSpacing())} vs "
            f"{tuple(round(s, 4) for s in reference.GetSpacing())} mm, origin "
            f"{tuple(round(o, 3) for o in image.GetOrigin())} vs "
            f"{tuple(round(o, 3) for o in reference.GetOrigin())} mm)"
        )


def resample_to(
    image: sitk.Image,
    reference: sitk.Image,
    interpolator: str = "linear",
    default_value: float = 0.0,
) -> sitk.Image:
    """Resample ``image`` onto the grid of ``reference`` (physical positions are kept).

    ``interpolator`` is ``"linear"``, ``"nearest"`` (labelmaps) or ``"bspline"``. Voxels outside
    ``image`` get ``default_value``. The unit metadata of ``image`` is carried over.
    """
    require_image(image, "image", dimension=None)
    require_image(reference, "reference", dimension=image.GetDimension())
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"interpolator: expected one of {sorted(_INTERPOLATORS)}, got {interpolator!r}")
    resampled = sitk.Resample(
        image, reference, sitk.Transform(), _INTERPOLATORS[interpolator], default_value, image.GetPixelID()
    )
    unit = unit_of(image)
    if unit is not None:
        resampled.SetMetaData(UNIT_KEY, unit)
    return resampled


def resample_to_spacing(
    image: sitk.Image, spacing_mm: Sequence[float], interpolator: str = "linear", default_value: float = 0.0
) -> sitk.Image:
    """Resample ``image`` to a new voxel spacing (mm) covering the same physical extent."""
    require_image(image, "image", dimension=None)
    if len(spacing_mm) != image.GetDimension() or min(spacing_mm) <= 0:
        raise ValueError(f"spacing_mm: expected {image.GetDimension()} positive values, got {tuple(spacing_mm)}")
    extent = np.array(image.GetSize()) * np.array(image.GetSpacing())
    size = np.maximum(1, np.round(extent / np.array(spacing_mm))).astype(int)
    reference = sitk.Image([int(s) for s in size], image.GetPixelID())
    reference.SetSpacing([float(s) for s in spacing_mm])
    reference.SetDirection(image.GetDirection())
    # Keep the centre of the field of view: the first voxel centre moves by half the spacing change.
    shift = (np.array(spacing_mm) - np.array(image.GetSpacing())) / 2.0
    direction = np.array(image.GetDirection()).reshape(image.GetDimension(), image.GetDimension())
    reference.SetOrigin(tuple(np.array(image.GetOrigin()) + direction @ shift))
    return resample_to(image, reference, interpolator, default_value)
