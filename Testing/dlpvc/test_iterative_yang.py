"""DLPVCLib.iterative_yang: iterative Yang PVC, checked on a phantom and against PETPVC's own output.

The PETPVC fixtures (``Testing/fixtures/petpvc``, see its README) were produced by the PETPVC
toolbox (Thomas et al. 2016) with ``petpvc --pvc IY``. Agreement criterion: at every voxel,
``|ours - PETPVC| <= 1e-3 * |PETPVC|`` (0.1 % per voxel; every voxel lies in some region there).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DLPVCLib.iterative_yang import iterative_yang, psf_blur
from DosimetryCore.core.metadata import PROVENANCE_KEY, UNIT_KEY
from DosimetryCore.core.progress import Cancelled
from DosimetryCore.core.volume import image_from_array

FIXTURES = Path(__file__).parent / "fixtures" / "petpvc"
FIXTURE_FWHM_MM = (9.0, 10.0, 11.0)

SPACING_MM = (4.0, 4.5, 5.0)
ORIGIN_MM = (-60.0, -55.0, 10.0)
FWHM_MM = (10.0, 9.0, 12.0)
CONCENTRATIONS = {0: 40.0, 1: 800.0, 2: 300.0}  # label -> Bq/mL: background, sphere A, sphere B


def _labelmap() -> sitk.Image:
    """Two spheres (radius 15 and 10 mm, voxel centres inside) on a 30 x 28 x 26 anisotropic grid."""
    z, y, x = np.meshgrid(
        *[ORIGIN_MM[a] + np.arange(n) * SPACING_MM[a] for a, n in ((2, 26), (1, 28), (0, 30))], indexing="ij"
    )
    labels = np.zeros(z.shape, np.uint8)
    labels[(x + 5.0) ** 2 + (y + 5.0) ** 2 + (z - 70.0) ** 2 <= 15.0**2] = 1
    labels[(x - 40.0) ** 2 + (y - 35.0) ** 2 + (z - 75.0) ** 2 <= 10.0**2] = 2
    return image_from_array(labels, spacing=SPACING_MM, origin=ORIGIN_MM)


@pytest.fixture
def phantom() -> tuple[sitk.Image, sitk.Image]:
    """(SPECT-like image in Bq/mL = the piecewise-constant truth blurred by the PSF, labelmap)."""
    labelmap = _labelmap()
    labels = sitk.GetArrayFromImage(labelmap)
    truth = np.vectorize(CONCENTRATIONS.get)(labels).astype(np.float32)
    blurred = psf_blur(image_from_array(truth, labelmap), FWHM_MM)
    image = image_from_array(sitk.GetArrayFromImage(blurred).astype(np.float32), labelmap, unit="Bq/mL")
    return image, labelmap


def _region_means(image: sitk.Image, labelmap: sitk.Image) -> dict[int, float]:
    values, labels = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(labelmap)
    return {label: float(values[labels == label].mean()) for label in CONCENTRATIONS}


def _binary_masks(labelmap: sitk.Image) -> list[sitk.Image]:
    labels = sitk.GetArrayFromImage(labelmap)
    return [image_from_array((labels == label).astype(np.float32), labelmap) for label in CONCENTRATIONS]


def test_recovers_both_sphere_means(phantom):
    image, labelmap = phantom
    before = _region_means(image, labelmap)
    assert before[2] < 0.8 * CONCENTRATIONS[2]  # the small sphere suffers a strong partial-volume loss
    corrected = iterative_yang(image, labelmap, FWHM_MM, names={1: "sphere A", 2: "sphere B"})
    after = _region_means(corrected, labelmap)
    for label, truth in CONCENTRATIONS.items():
        assert after[label] == pytest.approx(truth, rel=0.03)


def _read(name: str) -> sitk.Image:
    return sitk.ReadImage(str(FIXTURES / name))


@pytest.mark.parametrize(
    ("masks", "reference", "iterations"),
    [
        ("masks_binary.nii.gz", "iy_binary.nii.gz", 10),
        ("masks_binary.nii.gz", "iy_binary_3it.nii.gz", 3),
        ("masks_probabilistic.nii.gz", "iy_probabilistic.nii.gz", 10),
    ],
)
def test_matches_petpvc(masks, reference, iterations):
    ours = iterative_yang(_read("pet.nii.gz"), _read(masks), FIXTURE_FWHM_MM, iterations)
    expected = sitk.GetArrayFromImage(_read(reference)).astype(np.float64)
    np.testing.assert_allclose(sitk.GetArrayFromImage(ours), expected, rtol=1e-3, atol=0)


def test_labelmap_matches_petpvc_binary_masks():
    pet = _read("pet.nii.gz")
    stack = sitk.GetArrayFromImage(_read("masks_binary.nii.gz"))  # (region, z, y, x); region 0 = background
    labelmap = image_from_array(np.argmax(stack, axis=0).astype(np.uint8), pet)
    ours = iterative_yang(pet, labelmap, FIXTURE_FWHM_MM)
    expected = sitk.GetArrayFromImage(_read("iy_binary.nii.gz")).astype(np.float64)
    np.testing.assert_allclose(sitk.GetArrayFromImage(ours), expected, rtol=1e-3, atol=0)


def test_probabilistic_masks_equal_binary_result(phantom):
    image, labelmap = phantom
    binary = sitk.GetArrayFromImage(iterative_yang(image, labelmap, FWHM_MM))
    probabilistic = sitk.GetArrayFromImage(iterative_yang(image, _binary_masks(labelmap), FWHM_MM))
    np.testing.assert_allclose(probabilistic, binary, rtol=1e-6)


def test_unnamed_labels_join_the_background(phantom):
    image, labelmap = phantom
    only_a = sitk.GetArrayFromImage(labelmap) == 1
    expected = iterative_yang(image, image_from_array(only_a.astype(np.uint8), labelmap), FWHM_MM)
    result = iterative_yang(image, labelmap, FWHM_MM, names={1: "sphere A"})
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result), sitk.GetArrayFromImage(expected))


def test_output_geometry_metadata_progress_and_inputs_unchanged(phantom):
    image, labelmap = phantom
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    labelmap.CopyInformation(image)
    before = sitk.GetArrayFromImage(image).copy()
    reports = []
    result = iterative_yang(image, labelmap, FWHM_MM, iterations=4, progress=lambda f, m: reports.append(f))
    assert result.GetSize() == image.GetSize()
    assert result.GetSpacing() == image.GetSpacing()
    assert result.GetOrigin() == image.GetOrigin()
    assert result.GetDirection() == image.GetDirection()
    assert result.GetPixelID() == sitk.sitkFloat32
    assert result.GetMetaData(UNIT_KEY) == "Bq/mL"
    provenance = json.loads(result.GetMetaData(PROVENANCE_KEY))
    assert provenance["fwhm_mm"] == list(FWHM_MM)
    assert provenance["iterations"] == 4
    assert provenance["regions"] == ["background", "label 1", "label 2"]
    assert "iterative Yang" in provenance["method"]
    assert reports == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), before)


def test_cancel_propagates(phantom):
    image, labelmap = phantom

    def cancel(fraction, message):
        if fraction > 0:
            raise Cancelled

    with pytest.raises(Cancelled):
        iterative_yang(image, labelmap, FWHM_MM, progress=cancel)


def test_division_guard_gives_zero_where_the_pseudo_image_vanishes(phantom):
    """Masks covering part of the image: far outside them Y = G(Y) = 0 and the output is 0, not inf."""
    image, labelmap = phantom
    masks = _binary_masks(labelmap)[1:]  # spheres only, no background region
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = sitk.GetArrayFromImage(iterative_yang(image, masks, FWHM_MM))
    assert np.all(np.isfinite(result))
    assert result[0, 0, 0] == 0.0
    assert result[sitk.GetArrayFromImage(labelmap) == 1].mean() > 0


def _with_values(image: sitk.Image, change) -> sitk.Image:
    values = sitk.GetArrayFromImage(image)
    change(values)
    return image_from_array(values, image)


def _shifted(image: sitk.Image) -> sitk.Image:
    moved = sitk.Image(image)
    moved.SetOrigin(tuple(o + 4.0 for o in image.GetOrigin()))
    return moved


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nan", "image: contains NaN"),
        ("negative", "image: contains negative activity"),
        ("zero", "image: is zero everywhere"),
        ("2d", "image: expected a 3D image, got 2D"),
        ("unit", "image: unit is counts"),
        ("fwhm zero", "fwhm_mm: expected 3 positive"),
        ("fwhm negative", "fwhm_mm: expected 3 positive"),
        ("fwhm two values", "fwhm_mm: expected 3 positive"),
        ("fwhm in micrometres", "exceeds 100 mm"),
        ("fwhm above the field", "larger than the image's field of view"),
        ("iterations", "iterations: expected an integer >= 1"),
        ("labelmap geometry", "masks (labelmap): geometry differs from image"),
        ("mask geometry", "masks[1] ('sphere A'): geometry differs from image"),
        ("empty label", "empty region(s) 'lesion'"),
        ("empty mask", "masks[2] ('mask 2'): empty region"),
        ("negative mask", "masks[0] ('mask 0'): contains negative"),
        ("float labelmap", "masks (labelmap): expected an integer pixel type"),
        ("duplicate masks", "overlap matrix is singular"),
        ("no masks", "masks: expected a 3D labelmap"),
    ],
)
def test_errors(phantom, case, message):
    image, labelmap = phantom
    masks = _binary_masks(labelmap)
    args = {"image": image, "masks": labelmap, "fwhm_mm": FWHM_MM}
    if case == "nan":
        args["image"] = _with_values(image, lambda v: v.__setitem__((1, 2, 3), np.nan))
    elif case == "negative":
        args["image"] = _with_values(image, lambda v: v.__setitem__((1, 2, 3), -0.02 * v.max()))
    elif case == "zero":
        args["image"] = _with_values(image, lambda v: v.fill(0.0))
    elif case == "2d":
        args["image"] = image[:, :, 5]
    elif case == "unit":
        args["image"] = image_from_array(sitk.GetArrayFromImage(image), image, unit="counts")
    elif case == "fwhm zero":
        args["fwhm_mm"] = (10.0, 0.0, 12.0)
    elif case == "fwhm negative":
        args["fwhm_mm"] = (10.0, 9.0, -12.0)
    elif case == "fwhm two values":
        args["fwhm_mm"] = (10.0, 9.0)
    elif case == "fwhm in micrometres":
        args["fwhm_mm"] = (18500.0, 18500.0, 18500.0)
    elif case == "fwhm above the field":
        size = [n * 2 // 3 for n in image.GetSize()]
        args["image"] = sitk.RegionOfInterest(image, size, (0, 0, 0))
        args["masks"] = sitk.RegionOfInterest(labelmap, size, (0, 0, 0))
        extent = min(n * s for n, s in zip(size, image.GetSpacing(), strict=True))
        args["fwhm_mm"] = (extent + 1.0,) * 3
    elif case == "iterations":
        args["iterations"] = 0
    elif case == "labelmap geometry":
        args["masks"] = _shifted(labelmap)
    elif case == "mask geometry":
        args["masks"] = [masks[0], _shifted(masks[1]), masks[2]]
        args["names"] = {1: "sphere A"}
    elif case == "empty label":
        args["names"] = {1: "sphere A", 7: "lesion"}
    elif case == "empty mask":
        args["masks"] = [masks[0], masks[1], _with_values(masks[2], lambda v: v.fill(0.0))]
    elif case == "negative mask":
        args["masks"] = [_with_values(masks[0], lambda v: v.__setitem__((0, 0, 0), -0.5))] + masks[1:]
    elif case == "float labelmap":
        args["masks"] = sitk.Cast(labelmap, sitk.sitkFloat32)
    elif case == "duplicate masks":
        args["masks"] = [masks[0], masks[1], masks[1]]
    elif case == "no masks":
        args["masks"] = []
    with pytest.raises(ValueError, match=re.escape(message)):
        iterative_yang(**args)


def test_small_negative_values_left_by_filtering_are_accepted(phantom):
    image, labelmap = phantom
    smoothed = sitk.SmoothingRecursiveGaussian(image, 4.0)
    values = sitk.GetArrayFromImage(smoothed)
    values[values < 0.001 * values.max()] -= 0.005 * values.max()  # ringing below zero in the background
    smoothed = image_from_array(values, image, unit="Bq/mL")
    corrected = sitk.GetArrayFromImage(iterative_yang(smoothed, labelmap, FWHM_MM))
    assert np.isfinite(corrected).all() and corrected.max() > values.max()
