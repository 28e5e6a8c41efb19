"""PlanarTo3DLib.data, datasets and reconstruct: planar images, normalisation, variations, the counts' scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from PlanarTo3DLib import data
from PlanarTo3DLib.datasets import patient_samples, population_samples, virtual_patient
from PlanarTo3DLib.network import ResUNet3D
from PlanarTo3DLib.reconstruct import planar_consistency, reconstruct, scaled_to_counts
from PlanarTo3DLib.train import fine_tune


@pytest.fixture(scope="module")
def patient():
    return virtual_patient(5, "PSMA")


def test_the_patient_fills_the_grid_and_projects_at_the_cameras_count_level(patient):
    assert patient["activity"].shape == data.GRID_SHAPE_ZYX and patient["hu"].shape == data.GRID_SHAPE_ZYX
    mu = data.mu_map(patient["hu"])
    expected = data.planar_images(patient["activity"], mu)
    assert expected.shape == (2, data.GRID_SHAPE_ZYX[0], data.GRID_SHAPE_ZYX[2])
    total_MBq = patient["activity"].sum() * data.GRID_SPACING_MM**3 / 1000.0 * 1e-6
    per_view = expected.sum() / 2 / (total_MBq * data.DEFAULT_CAMERA.sensitivity_cps_per_MBq * 600.0)
    assert 0.05 < per_view < 0.6  # the body's transmission
    noisy = data.planar_images(patient["activity"], mu, total_counts=1e6, seed=3)
    assert noisy.sum() == pytest.approx(1e6, rel=0.01) and np.all(noisy == np.round(noisy))


def test_inputs_do_not_depend_on_the_count_level_and_targets_sum_to_the_scale(patient):
    mu = data.mu_map(patient["hu"])
    planar = data.planar_images(patient["activity"], mu)
    inputs = data.network_input(planar, mu)
    assert inputs.shape == (3, *data.GRID_SHAPE_ZYX)
    np.testing.assert_allclose(data.network_input(planar * 7.0, mu), inputs, rtol=1e-5)
    assert np.all(inputs[0, :, 0, :] == inputs[0, :, 5, :])  # spread along y
    assert data.activity_share(patient["activity"]).sum() == pytest.approx(data.ACTIVITY_SCALE, rel=1e-4)
    assert data.network_input(planar, mu, patient["activity"]).shape[0] == 4
    with pytest.raises(ValueError, match="hold no counts"):
        data.network_input(planar * 0, mu)


def test_a_variation_scales_regions_within_the_range_and_moves_little(patient):
    rng = np.random.default_rng(1)
    activity, hu, drawn = data.vary(patient["activity"], patient["hu"], patient["labels"], rng)
    assert all(0.5 <= f <= 2.0 for f in drawn["uptake_factors"].values())
    assert max(abs(a) for a in drawn["rotation_deg"]) <= 5 and max(abs(t) for t in drawn["translation_mm"]) <= 20
    assert activity.min() >= 0 and 0.3 < activity.sum() / patient["activity"].sum() < 2.5
    assert np.mean(np.abs(hu - patient["hu"]) > 100) < 0.2


def test_the_pet_differs_from_the_truth_as_the_evaluation_needs(patient):
    pet, drawn = data.pre_therapy_pet(patient["activity"], patient["labels"], np.random.default_rng(2))
    assert all(0.6 <= f <= 1.6 for f in drawn["uptake_factors"].values())
    assert pet.sum() / patient["activity"].sum() != pytest.approx(1.0, rel=0.01)


def test_the_reconstruction_projects_to_the_measured_total_and_its_consistency_is_measured(patient):
    mu = data.mu_map(patient["hu"])
    measured = data.planar_images(patient["activity"], mu)
    share = data.activity_share(patient["activity"]) * 3.0
    activity = scaled_to_counts(share, mu, measured)
    assert data.planar_images(activity, mu).sum() == pytest.approx(measured.sum(), rel=1e-4)
    assert activity.sum() == pytest.approx(patient["activity"].sum(), rel=1e-3)
    assert planar_consistency(activity, mu, measured) < 1e-4
    torch.manual_seed(0)
    model = ResUNet3D(3, (4, 8, 16, 32))
    estimate = reconstruct(model, measured, mu)
    assert estimate.shape == data.GRID_SHAPE_ZYX and estimate.min() >= 0
    assert data.planar_images(estimate, mu).sum() == pytest.approx(measured.sum(), rel=1e-4)
    with pytest.raises(ValueError, match="input channels"):
        reconstruct(model, measured, mu, pet=patient["activity"])


def test_the_pet_channel_moves_with_the_patient(patient):
    rng = np.random.default_rng(1)
    _, hu, drawn = data.vary(patient["activity"], patient["hu"], patient["labels"], rng)
    np.testing.assert_allclose(data.move_like(patient["hu"], drawn, -1000.0), hu)
    pet, _ = data.pre_therapy_pet(patient["activity"], patient["labels"], np.random.default_rng(2))
    inputs, targets = patient_samples(pet, patient["hu"], patient["labels"], 2, 5, 1e6, pet_conditioning=True)
    plain, plain_targets = patient_samples(pet, patient["hu"], patient["labels"], 2, 5, 1e6)
    assert inputs.shape[1] == 4 and plain.shape[1] == 3
    torch.testing.assert_close(inputs[:, :3], plain)  # the same variations and noise with or without the PET
    torch.testing.assert_close(targets, plain_targets)
    _, _, drawn = data.vary(pet, patient["hu"], patient["labels"], np.random.default_rng(5))
    np.testing.assert_allclose(inputs[0, 3].numpy(), data.activity_share(data.move_like(pet, drawn)), rtol=1e-5)


def test_the_population_gets_a_pet_unlike_its_truth():
    inputs, targets, seeds = population_samples(1, 1, 3, pet_conditioning=True)
    plain, plain_targets, _ = population_samples(1, 1, 3)
    assert inputs.shape[:2] == (2, 4) and plain.shape[:2] == (2, 3)
    torch.testing.assert_close(inputs[:, :3], plain)
    torch.testing.assert_close(targets, plain_targets)
    patient = virtual_patient(seeds[0])
    pet, _ = data.pre_therapy_pet(patient["activity"], patient["labels"], np.random.default_rng(seeds[0] + 2))
    np.testing.assert_allclose(inputs[0, 3].numpy(), data.activity_share(pet), rtol=1e-5)
    assert not np.allclose(inputs[0, 3].numpy(), targets[0, 0].numpy(), rtol=0.05)


def test_a_pet_conditioned_model_fine_tunes_and_reconstructs_with_the_pet(patient, tmp_path):
    torch.manual_seed(0)
    generic = ResUNet3D(4, (4, 8, 16, 32))
    pet, _ = data.pre_therapy_pet(patient["activity"], patient["labels"], np.random.default_rng(2))
    mu = data.mu_map(patient["hu"])
    measured = data.planar_images(patient["activity"], mu, seed=0)
    tuned, _ = fine_tune(generic, pet, patient["hu"], patient["labels"], float(measured.sum()), tmp_path,
                         variations=3, epochs=1)  # fmt: skip
    assert tuned.pet_conditioning and not ResUNet3D(3, (4, 8)).pet_conditioning
    estimate = reconstruct(tuned, measured, mu, pet)
    assert data.planar_images(estimate, mu).sum() == pytest.approx(measured.sum(), rel=1e-4)
    with pytest.raises(ValueError, match="input channels"):
        reconstruct(tuned, measured, mu)
