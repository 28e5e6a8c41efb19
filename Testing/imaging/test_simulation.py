"""DosimetryCore.imaging.simulation: one simulated case, planar images, units and provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from DosimetryCore.core.metadata import PROVENANCE_KEY
from DosimetryCore.core.volume import image_from_array
from DosimetryCore.imaging import simulation

FAST = simulation.Acquisition(views=24, norr_iterations=4, norr_subsets=2, rr_iterations=3, rr_subsets=4)


@pytest.fixture(scope="module")
def case():
    return simulation.simulate_case(7, size=40, spacing_mm=16.0, acquisition=FAST, device="cpu")


def test_case_holds_every_image_with_units_and_provenance(case):
    expected = {
        "ct", "labels", "activity", "mu", "anterior", "posterior", "projections_noise_free", "projections_noisy",
        "osem_norr_noise_free", "osem_norr_noisy", "osem_rr_noise_free", "osem_rr_noisy",
    }
    assert set(case.images) == expected
    assert case.images["osem_rr_noisy"].GetMetaData("deepdosimetry.unit") == "Bq/mL"
    assert case.images["anterior"].GetMetaData("deepdosimetry.unit") == "counts"
    assert case.images["projections_noisy"].GetSize() == (40, 40, 24)
    for image in case.images.values():
        provenance = json.loads(image.GetMetaData(PROVENANCE_KEY))
        assert provenance["seed"] == 7 and provenance["acquisition"]["views"] == 24
    assert "liver" in case.label_names.values()


def test_reconstructions_recover_the_total_activity(case):
    truth = sitk.GetArrayFromImage(case.images["activity"]).sum()
    for key in ("osem_norr_noise_free", "osem_rr_noise_free", "osem_rr_noisy"):
        assert sitk.GetArrayFromImage(case.images[key]).sum() == pytest.approx(truth, rel=0.03), key


def test_noisy_data_are_poisson_counts_around_the_noise_free_ones(case):
    noisy = sitk.GetArrayFromImage(case.images["projections_noisy"]).astype(np.float64)
    free = sitk.GetArrayFromImage(case.images["projections_noise_free"]).astype(np.float64)
    np.testing.assert_array_equal(noisy, np.round(noisy))
    assert noisy.sum() == pytest.approx(free.sum(), rel=3 * np.sqrt(free.sum()) / free.sum())


def test_same_seed_same_case_and_independent_noise_seeds(case):
    again = simulation.simulate_case(7, size=40, spacing_mm=16.0, acquisition=FAST, device="cpu")
    for key in ("anterior", "projections_noisy", "osem_rr_noisy"):
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(case.images[key]), sitk.GetArrayFromImage(again.images[key])
        )
    planar, spect = simulation.noise_seeds(3)
    assert planar != spect and simulation.noise_seeds(3) == (planar, spect)


def test_mu_map_of_water_and_air():
    ct = image_from_array(np.array([[[0.0, -1000.0]]], np.float32))
    mu = sitk.GetArrayFromImage(simulation.mu_map(ct, 208.4))
    assert mu[0, 0, 0] == pytest.approx(0.1351, rel=0.01)
    assert mu[0, 0, 1] < 1e-3


def _point_in_air(size=33, spacing=8.0):
    activity = np.zeros((size, size, size), np.float32)
    activity[size // 2, size // 2, size // 2] = 1e6
    activity_image = image_from_array(activity, spacing=(spacing,) * 3, origin=(-(size - 1) * spacing / 2,) * 3)
    ct = image_from_array(np.full_like(activity, -1000.0), activity_image)
    return activity_image, ct


def test_planar_counts_equal_activity_times_sensitivity_and_time_without_attenuation():
    activity, ct = _point_in_air()
    acquisition = simulation.Acquisition(sensitivity_cps_per_MBq=10.0, planar_time_s=300.0)
    anterior, posterior = simulation.simulate_planar_images(activity, ct, acquisition, noise=False, device="cpu")
    total_MBq = 1e6 * 0.512 / 1e6
    expected = total_MBq * 10.0 * 300.0
    assert sitk.GetArrayFromImage(anterior).sum() == pytest.approx(expected, rel=0.005)
    assert sitk.GetArrayFromImage(posterior).sum() == pytest.approx(expected, rel=0.005)
    assert anterior.GetSpacing() == (8.0, 8.0)
    assert anterior.GetMetaData("deepdosimetry.frame_duration_s") == "300"


def test_planar_rows_run_from_head_to_feet():
    activity, ct = _point_in_air()
    array = sitk.GetArrayFromImage(activity)
    array[:] = 0
    array[30, 16, 5] = 1e6  # near the top (superior), on the patient's right (low x)
    moved = image_from_array(array, activity)
    anterior, posterior = simulation.simulate_planar_images(moved, ct, noise=False, device="cpu")
    for view in (anterior, posterior):
        row, column = np.unravel_index(np.argmax(sitk.GetArrayFromImage(view)), (33, 33))
        assert (row, column) == (2, 5)


def test_bad_inputs_are_refused():
    activity, ct = _point_in_air()
    rotated = sitk.Image(activity)
    rotated.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    with pytest.raises(ValueError, match="axis-aligned"):
        simulation.simulate_planar_images(rotated, ct, device="cpu")
    shifted = sitk.Image(ct)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="ct: geometry differs from activity"):
        simulation.simulate_planar_images(activity, shifted, device="cpu")
    negative = image_from_array(-sitk.GetArrayFromImage(activity), activity)
    with pytest.raises(ValueError, match="negative"):
        simulation.simulate_planar_images(negative, ct, device="cpu")


def test_only_the_reconstructions_asked_for_are_made_and_they_are_the_same_images(case):
    activity, ct = case.images["activity"], case.images["ct"]
    seed = simulation.noise_seeds(7)[1]
    one = simulation.simulate_spect(activity, ct, FAST, seed=seed, reconstructions=["osem_rr_noisy"], device="cpu")
    assert set(one) == {"projections_noise_free", "projections_noisy", "osem_rr_noisy"}
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(one["osem_rr_noisy"]), sitk.GetArrayFromImage(case.images["osem_rr_noisy"])
    )
    with pytest.raises(ValueError, match="reconstructions: expected one or more of"):
        simulation.simulate_spect(activity, ct, FAST, seed=seed, reconstructions=[], device="cpu")
