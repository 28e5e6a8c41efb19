"""Iterative Yang partial-volume correction (IY-PVC), equal to PETPVC's ``--pvc IY``.

The classical reference method of DL-PVC (seed 003, Leube et al., J Nucl Med 2024, who ran ten
iterations of the PETPVC toolbox). The technique is Yang et al.'s region-based correction
(Yang J et al., IEEE Trans Nucl Sci 1996, "Investigation of partial volume correction methods for
brain FDG PET studies") made iterative as in Erlandsson K et al., Phys Med Biol 57:R119 (2012),
and implemented here step for step as in the PETPVC toolbox (Thomas BA et al., Phys Med Biol
61:7975 (2016); ``lib/petpvcIterativeYangPVCImageFilter.txx``):

    f_0 = PET
    repeat n times:
        m_i   = max(sum(w_i * f) / sum(w_i), 0)        regional means of the current estimate
        m'    = inv(M) m,  M_ij = sum(w_i * w_j) / sum(w_i)   (fuzzy-mask correction; M = I for 0/1 masks)
        Y     = sum_i m'_i * w_i                        piecewise-constant "pseudo" image
        f     = PET * Y / G(Y)                          G: the Gaussian PSF blur of :func:`psf_blur`

``w_i`` are the region masks, background included: binary regions from a labelmap (every voxel
outside the listed labels is the background region) or probabilistic masks (a sequence of 3D
images or PETPVC's 4D stack), each region in [0, 1] per voxel. The means are clamped at zero
before the correction by ``inv(M)``, the corrected means are not (as in PETPVC), so with
overlapping probabilistic masks a corrected mean, and then output voxels, can be negative.

Departure from PETPVC: where ``|G(Y)|`` is at most :data:`RATIO_FLOOR` times its maximum (in
practice where Y is zero over the whole PSF support, so Y/G(Y) is 0/0) the correction factor is
set to 0, so the output is 0 there; PETPVC divides by zero (ITK's divide filter then yields the
largest float).

Images are SimpleITK images in LPS with arrays (z, y, x); activity concentration in Bq/mL.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.metadata import QUANTITY_KEY, UNIT_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.units import ACTIVITY_UNIT
from DosimetryCore.core.validation import check_activity_image
from DosimetryCore.core.volume import require_image, require_same_geometry

GAUSSIAN_MAXIMUM_ERROR = 0.01
"""ITK DiscreteGaussianImageFilter's default maximum kernel truncation error, as PETPVC uses it."""

GAUSSIAN_MAXIMUM_KERNEL_WIDTH = 32
"""ITK DiscreteGaussianImageFilter's default maximum kernel width (voxels), as PETPVC uses it.

A PSF wider than this in voxels (sigma beyond about 5 voxels) is truncated, by ITK and PETPVC alike.
"""

MAXIMUM_OVERLAP_CONDITION = 1e12
"""Probabilistic masks whose overlap matrix M has a larger condition number are refused as singular."""

RATIO_FLOOR = 1e-12
"""Y / G(Y) is set to 0 where ``|G(Y)| <= RATIO_FLOOR * max|G(Y)|`` (the division guard)."""

MAXIMUM_FWHM_MM = 100.0
"""Largest PSF FWHM accepted (mm): SPECT/PET system resolutions are a few to about 25 mm; a larger value is a
unit mistake (cm, voxels), and a FWHM above the field of view makes the correction meaningless."""

NEGATIVE_TOLERANCE = 0.01
"""Negative values down to this fraction of the image maximum are accepted (filtering and interpolation
leave them; PETPVC accepts any); more negative ones are refused as not an activity map."""

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def fwhm_to_variance_mm2(fwhm_mm: Sequence[float]) -> tuple[float, float, float]:
    """Per-axis Gaussian variance (mm^2) of a PSF given by its FWHM (mm) along the image x, y, z axes."""
    fwhm = _checked_fwhm(fwhm_mm)
    return tuple((f / _FWHM_PER_SIGMA) ** 2 for f in fwhm)


def psf_blur(image: sitk.Image, fwhm_mm: Sequence[float]) -> sitk.Image:
    """Blur a 3D image with a Gaussian PSF exactly as PETPVC does (the G of iterative Yang).

    ITK's DiscreteGaussianImageFilter with per-axis variance ``(FWHM / (2 sqrt(2 ln 2)))^2`` mm^2
    along the image's x, y, z (index) axes, the image spacing used, maximum error
    :data:`GAUSSIAN_MAXIMUM_ERROR` and maximum kernel width :data:`GAUSSIAN_MAXIMUM_KERNEL_WIDTH`
    (ITK's defaults; zero-flux Neumann boundary). Returns a float64 image on the same grid.
    """
    require_image(image, "image", dimension=3)
    blur = sitk.DiscreteGaussianImageFilter()
    blur.SetVariance(fwhm_to_variance_mm2(fwhm_mm))
    blur.SetMaximumError(GAUSSIAN_MAXIMUM_ERROR)
    blur.SetMaximumKernelWidth(GAUSSIAN_MAXIMUM_KERNEL_WIDTH)
    blur.SetUseImageSpacing(True)
    return blur.Execute(sitk.Cast(image, sitk.sitkFloat64))


def iterative_yang(
    image: sitk.Image,
    masks: sitk.Image | Sequence[sitk.Image],
    fwhm_mm: Sequence[float],
    iterations: int = 10,
    names: Mapping[int, str] | None = None,
    progress: ProgressCallback | None = None,
) -> sitk.Image:
    """Iterative Yang partial-volume correction of an activity image (PETPVC ``--pvc IY``).

    Args:
        image: 3D activity concentration (Bq/mL; unit metadata absent or ``"Bq/mL"``), finite,
            non-negative and not zero everywhere.
        masks: the regions, on the grid of ``image``. Either a labelmap (integer pixel type; each
            label in ``names``, or each non-zero label present when ``names`` is None, is a region,
            and every other voxel forms the background region), or probabilistic masks: a sequence
            of 3D images or one 4D image stacking them along its 4th axis (PETPVC's mask file),
            non-negative, background included.
        fwhm_mm: PSF full width at half maximum (mm) along the image x, y, z axes, all > 0.
        iterations: number of iterations n >= 1 (PETPVC's default 10).
        names: region names for messages and provenance: label -> name for a labelmap, position
            (0-based) -> name for probabilistic masks.
        progress: ``progress(fraction, message)`` callback, called once per iteration.

    Returns:
        A new float32 image in Bq/mL (unit metadata set) on the grid of ``image``, with its quantity
        metadata and the provenance under :data:`PROVENANCE_KEY`. Inputs are never changed.

    Raises:
        ValueError: on a non-3D, NaN, negative or all-zero image, a wrong unit, a mask whose grid
            differs from the image, an empty or negative region, probabilistic masks whose overlap
            matrix is singular, FWHM <= 0 or iterations < 1.
    """
    pet = _activity_array(image)
    fwhm = _checked_fwhm(fwhm_mm, image)
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 1:
        raise ValueError(f"iterations: expected an integer >= 1, got {iterations!r}")
    regions = _regions(image, masks, names)
    report = progress or no_progress
    report(0.0, "iterative Yang PVC")
    estimate = pet
    for iteration in range(1, iterations + 1):
        means = np.maximum(regions.means(estimate), 0.0)
        yang = regions.synthesise(means)
        estimate = pet * _correction_factors(yang, _blurred(yang, image, fwhm))
        report(iteration / iterations, f"iterative Yang PVC: iteration {iteration}/{iterations}")
    return _output_image(estimate, image, fwhm, int(iterations), regions)


class _LabelRegions:
    """Disjoint binary regions given by a region index per voxel (0..R-1); M is the identity."""

    def __init__(self, index: np.ndarray, names: list[str]):
        self.index = index
        self.names = names
        self.kind = "labelmap"
        self.sizes = np.bincount(index, minlength=len(names)).astype(np.float64)

    def means(self, values: np.ndarray) -> np.ndarray:
        """Regional means of ``values`` (flattened like the index), shape (R,)."""
        return np.bincount(self.index, weights=values, minlength=len(self.names)) / self.sizes

    def synthesise(self, means: np.ndarray) -> np.ndarray:
        """The pseudo image sum_i m_i w_i, flattened."""
        return means[self.index]


class _WeightedRegions:
    """Probabilistic regions as weights (R, N) with PETPVC's fuzzy correction M_ij = sum(w_i w_j)/sum(w_i)."""

    def __init__(self, weights: np.ndarray, names: list[str]):
        self.weights = weights
        self.names = names
        self.kind = "probabilistic"
        self.sizes = weights.sum(axis=1)
        overlap = (weights @ weights.T) / self.sizes[:, None]
        if not np.linalg.cond(overlap) < MAXIMUM_OVERLAP_CONDITION:
            raise ValueError(
                "masks: the regions' overlap matrix is singular (a mask repeats or is a combination of others)"
            )
        self.overlap = overlap

    def means(self, values: np.ndarray) -> np.ndarray:
        """Weighted regional means sum(w_i f) / sum(w_i), shape (R,)."""
        return (self.weights @ values) / self.sizes

    def synthesise(self, means: np.ndarray) -> np.ndarray:
        """The pseudo image sum_i m'_i w_i with m' = inv(M) m, flattened."""
        return np.linalg.solve(self.overlap, means) @ self.weights


def _checked_fwhm(fwhm_mm: Sequence[float], image: sitk.Image | None = None) -> tuple[float, float, float]:
    """The FWHM (x, y, z) in mm, checked positive, at most :data:`MAXIMUM_FWHM_MM` and within the field of view of
    ``image`` when given."""
    values = tuple(float(f) for f in np.ravel(fwhm_mm))
    if len(values) != 3 or not all(math.isfinite(f) and f > 0 for f in values):
        raise ValueError(f"fwhm_mm: expected 3 positive FWHM values in mm (x, y, z), got {tuple(np.ravel(fwhm_mm))}")
    if max(values) > MAXIMUM_FWHM_MM:
        raise ValueError(
            f"fwhm_mm: {values} mm exceeds {MAXIMUM_FWHM_MM:g} mm; a system FWHM is a few to about 25 mm "
            "(is it given in mm?)"
        )
    if image is not None:
        extent = tuple(n * s for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True))
        if any(f > e for f, e in zip(values, extent, strict=True)):
            raise ValueError(f"fwhm_mm: {values} mm is larger than the image's field of view {extent} mm (x, y, z)")
    return values


def _activity_array(image: sitk.Image) -> np.ndarray:
    """The image's values, flattened, as float64, checked to be a valid activity map."""
    return check_activity_image(image, "image", negative_tolerance=NEGATIVE_TOLERANCE).ravel()


def _regions(
    image: sitk.Image, masks: sitk.Image | Sequence[sitk.Image], names: Mapping[int, str] | None
) -> _LabelRegions | _WeightedRegions:
    names = dict(names or {})
    if isinstance(masks, sitk.Image) and masks.GetDimension() == 3:
        return _label_regions(image, masks, names)
    if isinstance(masks, sitk.Image) and masks.GetDimension() == 4:
        masks = _unstack(masks)
    if isinstance(masks, sitk.Image) or not isinstance(masks, Sequence) or not masks:
        raise ValueError(
            "masks: expected a 3D labelmap, a 4D mask stack or a non-empty sequence of 3D masks, "
            f"got {type(masks).__name__}"
        )
    return _weighted_regions(image, masks, names)


def _label_regions(image: sitk.Image, labelmap: sitk.Image, names: dict[int, str]) -> _LabelRegions:
    require_image(labelmap, "masks (labelmap)", dimension=3)
    if sitk.GetArrayViewFromImage(labelmap).dtype.kind not in "iu":
        raise ValueError(
            f"masks (labelmap): expected an integer pixel type, got {labelmap.GetPixelIDTypeAsString()}; "
            "pass probabilistic masks as a sequence of images"
        )
    require_same_geometry(labelmap, image, "masks (labelmap)", "image")
    if 0 in names:
        raise ValueError("names: label 0 is the background and cannot name a region")
    values, inverse = np.unique(sitk.GetArrayViewFromImage(labelmap), return_inverse=True)
    labels = sorted(names) if names else [int(v) for v in values if v != 0]
    position = {label: i + 1 for i, label in enumerate(labels)}
    index = np.array([position.get(int(v), 0) for v in values], dtype=np.intp)[inverse.ravel()]
    region_names = ["background"] + [names.get(label, f"label {label}") for label in labels]
    sizes = np.bincount(index, minlength=len(region_names))
    empty = [region_names[i] for i in range(1, len(region_names)) if sizes[i] == 0]
    if empty:
        raise ValueError(f"masks (labelmap): empty region(s) {', '.join(map(repr, empty))}")
    if sizes[0] == 0:
        return _LabelRegions(index - 1, region_names[1:])
    return _LabelRegions(index, region_names)


def _unstack(stack: sitk.Image) -> list[sitk.Image]:
    """Split PETPVC's 4D mask stack into 3D masks (the 4D geometry's first three axes kept)."""
    require_image(stack, "masks (4D stack)", dimension=4)
    size = list(stack.GetSize())
    return [
        sitk.Extract(stack, size[:3] + [0], [0, 0, 0, i], sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)
        for i in range(size[3])
    ]


def _weighted_regions(image: sitk.Image, masks: Sequence[sitk.Image], names: dict[int, str]) -> _WeightedRegions:
    region_names = [names.get(i, f"mask {i}") for i in range(len(masks))]
    weights = np.empty((len(masks), int(np.prod(image.GetSize()))), dtype=np.float64)
    for i, mask in enumerate(masks):
        label = f"masks[{i}] ({region_names[i]!r})"
        require_image(mask, label, dimension=3)
        require_same_geometry(mask, image, label, "image")
        weights[i] = sitk.GetArrayViewFromImage(mask).ravel()
        if not np.all(np.isfinite(weights[i])) or weights[i].min() < 0:
            raise ValueError(f"{label}: contains negative, NaN or infinite values")
        if not weights[i].any():
            raise ValueError(f"{label}: empty region (zero everywhere)")
    return _WeightedRegions(weights, region_names)


def _blurred(values: np.ndarray, reference: sitk.Image, fwhm_mm: tuple[float, float, float]) -> np.ndarray:
    """G(values): :func:`psf_blur` of a flattened array on the grid of ``reference``, flattened."""
    image = sitk.GetImageFromArray(values.reshape(sitk.GetArrayViewFromImage(reference).shape))
    image.CopyInformation(reference)
    return sitk.GetArrayFromImage(psf_blur(image, fwhm_mm)).ravel()


def _correction_factors(yang: np.ndarray, blurred: np.ndarray) -> np.ndarray:
    """Y / G(Y), 0 where ``|G(Y)| <= RATIO_FLOOR * max|G(Y)|`` (PETPVC does not guard the division)."""
    magnitude = np.abs(blurred)
    valid = magnitude > RATIO_FLOOR * magnitude.max()
    return np.divide(yang, blurred, out=np.zeros_like(yang), where=valid)


def _output_image(
    values: np.ndarray,
    image: sitk.Image,
    fwhm_mm: tuple[float, float, float],
    iterations: int,
    regions: _LabelRegions | _WeightedRegions,
) -> sitk.Image:
    output = sitk.GetImageFromArray(values.reshape(sitk.GetArrayViewFromImage(image).shape).astype(np.float32))
    output.CopyInformation(image)
    output.SetMetaData(UNIT_KEY, ACTIVITY_UNIT)
    if image.HasMetaDataKey(QUANTITY_KEY):
        output.SetMetaData(QUANTITY_KEY, image.GetMetaData(QUANTITY_KEY))
    provenance = {
        "method": "iterative Yang PVC (PETPVC --pvc IY; Yang 1996, Erlandsson 2012, Thomas 2016)",
        "fwhm_mm": list(fwhm_mm),
        "iterations": iterations,
        "masks": regions.kind,
        "regions": regions.names,
    }
    stamp(output, provenance)
    return output
