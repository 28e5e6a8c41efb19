"""Tests of DosimetryCore.dose.convolution, .vdk and .images: FFT convolution, VDK and LED dose rates,
the SimpleITK entry point and the per-segment table."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from DosimetryCore.core.metadata import PROVENANCE_KEY
from DosimetryCore.core.volume import image_from_array, unit_of
from DosimetryCore.dose import compute_dose_rate, ct_on_activity_grid, segment_table, write_table_csv
from DosimetryCore.dose.convolution import fast_fft_size, fft_convolve
from DosimetryCore.dose.kernels import KERNEL_DENSITY_G_PER_CM3, VoxelKernel, voxel_kernel
from DosimetryCore.dose.vdk import led_dose_rate, local_deposition_MeV_per_decay, vdk_dose_rate
from DosimetryCore.io.labels import label_names
from DosimetryCore.physics.nuclides import load_nuclide

CPU = torch.device("cpu")
SPACING = (4.8, 4.8, 4.8)
J_PER_MEV = 1.602176634e-13


@pytest.fixture(scope="module")
def kernel() -> VoxelKernel:
    return voxel_kernel(SPACING)


# --------------------------------------------------------------------------------------------------------------
# convolution


def test_fast_fft_sizes_are_5_smooth():
    assert [fast_fft_size(n) for n in (1, 7, 11, 179, 561)] == [1, 8, 12, 180, 576]
    assert fast_fft_size(135, even=True) == 144


@pytest.mark.parametrize("kernel_shape", [(5, 7, 9), (31, 3, 41)])
def test_fft_convolution_equals_direct_convolution(kernel_shape, rng):
    volume = rng.random((11, 13, 17))
    kernel = rng.random(kernel_shape)  # not symmetric: checks orientation; (31, 3, 41) exceeds the volume
    result = fft_convolve(torch.as_tensor(volume), torch.as_tensor(kernel)).numpy()
    np.testing.assert_allclose(result, ndimage.convolve(volume, kernel, mode="constant"), rtol=1e-9, atol=1e-9)


def test_fft_convolution_refuses_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        fft_convolve(torch.zeros(4, 4, 4), torch.zeros(2, 3, 3))


# --------------------------------------------------------------------------------------------------------------
# VDK and LED


def test_led_dose_rate_is_activity_times_energy_over_density():
    activity = np.full((2, 3, 4), 1.0e6, dtype=np.float32)
    density = np.full(activity.shape, 0.5, dtype=np.float32)
    data = load_nuclide("Lu-177")
    electrons = data.mean_energy_per_decay_MeV("beta") + data.mean_energy_per_decay_MeV("electron")
    expected = 1.0e6 * electrons * J_PER_MEV / 0.5e-3 * 3600.0  # Bq/mL x J / (kg/mL) x s/h
    np.testing.assert_allclose(led_dose_rate(activity, density, device=CPU).numpy(), expected, rtol=1e-6)
    total = led_dose_rate(activity, density, include_photons=True, device=CPU).numpy()
    np.testing.assert_allclose(total / expected, data.mean_energy_per_decay_MeV("total") / electrons, rtol=1e-6)
    assert local_deposition_MeV_per_decay() == pytest.approx(0.1479, abs=2e-4)


def test_vdk_of_a_point_source_is_the_kernel_scaled_by_density(kernel):
    activity = np.zeros((21, 21, 21), dtype=np.float32)
    activity[10, 10, 10] = 1.0e6 / (4.8**3 / 1000.0)  # 1 MBq in the centre voxel
    density = np.full(activity.shape, KERNEL_DENSITY_G_PER_CM3, dtype=np.float32)
    expected = kernel.total()[39:60, 39:60, 39:60] * 3.6  # mGy/s -> Gy/h
    for scaling in ("electrons", "total"):
        dose = vdk_dose_rate(activity, density, kernel, SPACING, density_scaling=scaling, device=CPU).numpy()
        np.testing.assert_allclose(dose, expected, rtol=1e-4, atol=1e-6 * expected.max())
    # Li et al.: the whole kernel's dose scales with 1.04 / density.
    total = vdk_dose_rate(activity, density / 2, kernel, SPACING, density_scaling="total", device=CPU).numpy()
    np.testing.assert_allclose(total, 2 * expected, rtol=1e-4, atol=2e-6 * expected.max())
    # Default: only the beta kernel's dose scales; the photon dose per mass stays.
    beta = np.pad(kernel.beta, 6)[:, :, :] * 3.6
    photon = kernel.photon[39:60, 39:60, 39:60] * 3.6
    electrons = vdk_dose_rate(activity, density / 2, kernel, SPACING, device=CPU).numpy()
    np.testing.assert_allclose(electrons, 2 * beta + photon, rtol=1e-4, atol=1e-6 * expected.max())


def test_vdk_density_scaling_is_checked(kernel):
    with pytest.raises(ValueError, match="density_scaling"):
        vdk_dose_rate(np.ones((4, 4, 4)), np.ones((4, 4, 4)), kernel, SPACING, density_scaling="photons", device=CPU)


def test_vdk_refuses_a_kernel_of_another_voxel_size(kernel):
    with pytest.raises(ValueError, match="kernel"):
        vdk_dose_rate(np.ones((4, 4, 4)), np.ones((4, 4, 4)), kernel, (3.0, 4.8, 4.8), device=CPU)


# --------------------------------------------------------------------------------------------------------------
# images


def images(activity_value: float = 1.0e5) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """(activity Bq/mL, CT HU, labelmap) on a 20^3 grid of 4.8 mm with an oblique direction and an offset: a
    water body (0 HU) with a lung slab (-800 HU) in air (-1000 HU), warm inside with a hot cube."""
    hu = np.full((20, 20, 20), -1000, dtype=np.int16)
    hu[1:19, 1:19, 1:19] = 0
    hu[1:19, 3:17, 2:5] = -800  # enclosed by tissue in every axial (y, x) slice
    activity = np.where(hu > -1000, activity_value / 10, 0.0).astype(np.float32)
    activity[5:12, 5:12, 5:12] = activity_value
    labels = np.zeros(activity.shape, dtype=np.uint8)
    labels[5:12, 5:12, 5:12] = 1
    labels[14:18, 14:18, 14:18] = 2
    direction = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    geometry = {"spacing": SPACING, "origin": (-40.0, 12.5, 100.0), "direction": direction}
    return (
        image_from_array(activity, unit="Bq/mL", **geometry),
        image_from_array(hu, unit="HU", **geometry),
        image_from_array(labels, **geometry),
    )


@pytest.mark.parametrize("method", ["vdk", "led", "mc"])
def test_compute_dose_rate_returns_a_gy_per_h_image_on_the_activity_grid(method):
    activity, ct, _ = images()
    result = compute_dose_rate(activity, ct, method, photon_histories=2_000, batches=4, device=CPU)
    image = result.image
    assert image.GetSize() == activity.GetSize() and image.GetSpacing() == activity.GetSpacing()
    assert image.GetOrigin() == activity.GetOrigin() and image.GetDirection() == activity.GetDirection()
    assert unit_of(image) == "Gy/h"
    assert json.loads(image.GetMetaData(PROVENANCE_KEY))["method"] == method
    dose = sitk.GetArrayFromImage(image)
    assert dose.dtype == np.float32 and (dose >= 0).all() and dose[8, 8, 8] > dose[2, 17, 17] > 0
    assert (dose[0] == 0).all() and (dose[:, :, 19] == 0).all()  # air around the body
    assert (result.relative_uncertainty is not None) == (method == "mc")
    assert "outside the body" in result.provenance["outside_body"]
    assert result.provenance["activity_outside_body_percent"] == 0.0 and "warnings" not in result.provenance


def test_vdk_has_no_ring_in_the_air_and_keeps_the_li_variant():
    activity, ct, _ = images()
    values = sitk.GetArrayFromImage(activity)
    values[sitk.GetArrayFromImage(ct) == -800] = 0.0  # a cold lung next to active tissue
    activity = image_from_array(values, activity)
    default = compute_dose_rate(activity, ct, "vdk", device=CPU)
    li = compute_dose_rate(activity, ct, "vdk", density_scaling="total", device=CPU)
    assert "photon-kernel dose unscaled" in default.provenance["density_scaling"]
    assert "Li et al." in li.provenance["density_scaling"]
    default_dose, li_dose = sitk.GetArrayFromImage(default.image), sitk.GetArrayFromImage(li.image)
    np.testing.assert_allclose(default_dose[8, 8, 8], li_dose[8, 8, 8], rtol=1e-3)  # soft tissue: the same
    lung = (slice(5, 12), slice(5, 12), slice(2, 5))
    assert default_dose[lung].mean() < 0.8 * li_dose[lung].mean()  # lung: the photon dose is not inflated


def test_activity_outside_the_body_is_reported_loudly():
    activity, ct, _ = images()
    values = sitk.GetArrayFromImage(activity)
    values[0, :, :] = 1.0e4  # a slab of activity in the air: misregistered SPECT
    result = compute_dose_rate(image_from_array(values, activity), ct, "led", device=CPU)
    assert result.provenance["activity_outside_body_percent"] > 1.0
    assert "outside the body outline" in result.provenance["warnings"][0]
    assert (sitk.GetArrayFromImage(result.image)[0] == 0).all()


def test_methods_agree_in_the_hot_cube_where_electrons_dominate():
    activity, ct, _ = images()
    values = {
        method: sitk.GetArrayFromImage(
            compute_dose_rate(activity, ct, method, photon_histories=20_000, device=CPU).image
        )[7:10, 7:10, 7:10].mean()
        for method in ("vdk", "led", "mc")
    }
    # LED holds the electron energy only; VDK and MC add the photon dose of a small phantom (a few %).
    assert values["vdk"] == pytest.approx(values["mc"], rel=0.03)
    assert 1.0 < values["mc"] / values["led"] < 1.1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("negative", "negative"),
        ("nan", "NaN"),
        ("geometry", "geometry"),
        ("unit", "Bq/mL"),
        ("method", "method"),
        ("density", "density map"),
        ("offset", "shifted by \\+1024"),
        ("labelmap", "labelmap"),
        ("scaling", "density_scaling"),
    ],
)
def test_bad_inputs_are_refused(change, message):
    activity, ct, _ = images()
    method = "vdk"
    if change in ("negative", "nan"):
        values = sitk.GetArrayFromImage(activity)
        values[0, 0, 0] = -1.0 if change == "negative" else np.nan
        activity = image_from_array(values, activity)
    elif change == "geometry":
        ct.SetSpacing((4.8, 4.8, 5.0))
    elif change == "unit":
        activity.SetMetaData("deepdosimetry.unit", "MBq")
    elif change in ("density", "offset", "labelmap"):
        hu = sitk.GetArrayFromImage(ct).astype(np.float32)
        wrong = {"density": (hu + 1000) / 1000, "offset": hu + 1024, "labelmap": (hu > -1000).astype(np.float32)}
        ct = image_from_array(wrong[change], ct)
    elif change == "scaling":
        with pytest.raises(ValueError, match=message):
            compute_dose_rate(activity, ct, "vdk", density_scaling="photons", device=CPU)
        return
    else:
        method = "cnn"
    with pytest.raises(ValueError, match=message):
        compute_dose_rate(activity, ct, method, device=CPU)


def test_ct_on_activity_grid_refuses_a_ct_that_misses_the_activity():
    activity, ct, _ = images()
    half = sitk.RegionOfInterest(ct, (20, 20, 10), (0, 0, 0))  # half of the field along one axis
    with pytest.raises(ValueError, match="does not cover the activity"):
        ct_on_activity_grid(half, activity, "ct.nrrd")
    covered = ct_on_activity_grid(ct, activity)
    np.testing.assert_allclose(sitk.GetArrayFromImage(covered), sitk.GetArrayFromImage(ct), atol=1e-6)
    assert unit_of(covered) == "HU"



def test_segment_table_and_csv(tmp_path):
    activity, ct, labels = images()
    dose = compute_dose_rate(activity, ct, "led", device=CPU).image
    labels.SetMetaData("deepdosimetry.label_names", json.dumps({"1": "tumour", "2": "liver"}))
    rows = segment_table(dose, labels)
    assert [row["segment"] for row in rows] == ["tumour", "liver"]
    values = sitk.GetArrayFromImage(dose)
    assert rows[0]["mean"] == pytest.approx(values[5:12, 5:12, 5:12].mean(), rel=1e-6)
    assert rows[0]["voxels"] == 343 and rows[0]["volume_ml"] == pytest.approx(343 * 4.8**3 / 1000)
    for key in ("max", "D2%", "D50%", "D98%"):
        assert key in rows[0]
    assert rows[0]["D98%"] <= rows[0]["D50%"] <= rows[0]["D2%"] <= rows[0]["max"]
    path = write_table_csv(rows, tmp_path / "table.csv")
    with path.open() as stream:
        header = next(csv.reader(stream))
    assert header[:4] == ["segment", "label", "voxels", "volume_ml"] and "mean_Gy_per_h" in header


def test_label_names_from_slicer_metadata_or_numbers():
    _, _, labels = images()
    assert label_names(labels) == {1: "label 1", 2: "label 2"}
    labels.SetMetaData("Segment0_Name", "kidney")
    labels.SetMetaData("Segment0_LabelValue", "2")
    assert label_names(labels) == {2: "kidney"}


def test_segment_table_refuses_other_geometry():
    activity, ct, labels = images()
    dose = compute_dose_rate(activity, ct, "led", device=CPU).image
    labels.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="geometry"):
        segment_table(dose, labels)


def test_an_untagged_activity_is_used_as_bq_per_ml_and_says_so():
    activity, ct, _ = images()
    untagged = sitk.GetImageFromArray(sitk.GetArrayFromImage(activity))
    untagged.CopyInformation(activity)
    result = compute_dose_rate(untagged, ct, "led", device=CPU)
    assert any("states no unit" in warning for warning in result.provenance["warnings"])
