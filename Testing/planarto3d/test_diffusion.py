"""PlanarTo3D's diffusion path on tiny grids: the slice prior's padding, the planar consistency step (TV along z not
circular), and DDS sampling (consistency with the counts, non-negativity, the total tied to the counts, and an
uncertainty map that follows where the planar images leave the depth open). The priors are small and untrained:
what is tested is the sampler and the physics around it, not a learnt anatomy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from DosimetryCore.imaging.projection import PlanarProjector
from PlanarTo3DLib import data
from PlanarTo3DLib.consistency import (
    ConsistencySettings,
    PlanarConsistency,
    z_differences,
    z_differences_adjoint,
)
from PlanarTo3DLib.diffusion import (
    SHARE_KNEE,
    SHARE_MAX,
    NoisePrediction,
    SlicePrior,
    crop_to,
    from_diffusion,
    noise_loss,
    pad_to_multiple,
    to_diffusion,
)
from PlanarTo3DLib.diffusion_sampling import SamplingSettings, organ_spread, sample_activity
from PlanarTo3DLib.diffusion_train import slices_of
from PlanarTo3DLib.reconstruct import planar_consistency

SPACING_MM = data.GRID_SPACING_MM
SHAPE = (10, 16, 14)
"""A tiny grid (z, y, x): 96 x 154 x 134 mm at 9.6 mm."""


def _tiny_prior(ct_conditioning: bool = False, pet_conditioning: bool = False) -> SlicePrior:
    torch.manual_seed(0)
    return SlicePrior((8, 16), 1, ct_conditioning, pet_conditioning)


def _phantom(depths: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attenuating box (mu 0.15/cm) with 2 x 2 (z, x) sources at the given y indices on one antero-posterior line,
    the same total activity whatever their number; returns (activity Bq/mL, mu 1/cm, Poisson counts (2, z, x))."""
    mu = np.zeros(SHAPE, np.float32)
    mu[:, 1:-1, 1:-1] = 0.15
    activity = np.zeros(SHAPE, np.float32)
    for depth in depths:
        activity[4:6, depth, 5:7] = 2e5 / len(depths)
    measured = data.planar_images(activity, mu, total_counts=4e5, seed=3, spacing_mm=SPACING_MM)
    return activity, mu, measured


def test_padding_round_trip_and_the_prior_keeps_any_slice_size():
    slices = torch.randn(3, 2, 10, 13)
    padded, size = pad_to_multiple(slices, 4)
    assert padded.shape == (3, 2, 12, 16) and size == (10, 13)
    assert torch.equal(crop_to(padded, size), slices) and float(padded[..., 10:, :].abs().sum()) == 0.0
    share = torch.rand(4, 5)
    assert torch.allclose(from_diffusion(to_diffusion(share)), share)
    assert float(to_diffusion(torch.zeros(1))) == -1.0
    noisy, mu, pet = torch.randn(5, 1, 10, 13), torch.rand(5, 1, 10, 13), torch.rand(5, 1, 10, 13)
    for ct, with_pet in ((False, False), (True, False), (False, True), (True, True)):
        prior = _tiny_prior(ct, with_pet)
        condition = prior.condition(mu, pet)
        assert (0 if condition is None else condition.shape[1]) == ct + with_pet == prior.condition_channels
        assert prior(noisy, torch.full((5,), 10), condition).shape == (5, 1, 10, 13)
        assert SlicePrior.from_config(prior.config).config == prior.config
        with torch.no_grad():  # training slices: clean, mu and, when the volumes had it, the PET
            output = NoisePrediction(prior).eval()(torch.randn(2, 3, 10, 13))
        assert output.shape == (2, 2, 10, 13) and float(noise_loss(output, torch.zeros(2))) > 0
    with pytest.raises(ValueError, match="conditioned on the pre-therapy PET"):
        _tiny_prior(False, True).condition(mu, None)
    with pytest.raises(ValueError, match="takes 0 conditioning"):
        _tiny_prior()(noisy, torch.full((5,), 10), mu)
    volumes, targets = torch.rand(2, 4, 3, 10, 13), torch.rand(2, 1, 3, 10, 13)
    slices, _ = slices_of(volumes, targets)
    assert slices.shape == (6, 3, 10, 13) and torch.allclose(slices[4, 2], to_diffusion(volumes[1, 3, 1]))
    assert slices_of(volumes[:, :3], targets)[0].shape == (6, 2, 10, 13)
    with pytest.raises(ValueError, match="SliceDiffusionUNet"):
        SlicePrior.from_config({"architecture": "ResUNet3D"})


def test_value_map_is_bounded_logarithmic_and_a_linear_map_prior_is_refused():
    shares = torch.tensor([0.0, SHARE_KNEE, 1.0, 10.0, SHARE_MAX, 10 * SHARE_MAX])
    values = to_diffusion(shares)
    assert float(values[0]) == -1.0 and float(values[4]) == pytest.approx(1.0) and float(values[5]) == 1.0
    assert bool((values[1:] > values[:-1])[:4].all())
    # a value error of 0.01 is the same relative activity error at shares 1 and 10 (logarithmic above the knee)
    relative = [float(from_diffusion(to_diffusion(torch.tensor(s)) + 0.01) / s - 1) for s in (1.0, 10.0)]
    assert relative[0] == pytest.approx(relative[1], rel=0.1) and 0.01 < relative[0] < 0.05
    assert float(to_diffusion(torch.tensor(-0.5))) == -1.0 and float(from_diffusion(torch.tensor(-3.0))) == 0.0
    old = SlicePrior((8, 16)).config
    old.pop("value_map")
    with pytest.raises(ValueError, match="retrain"):
        SlicePrior.from_config(old | {"diffusion_scale": 2.0, "diffusion_offset": -1.0})


def test_tv_along_z_is_not_circular():
    rng = np.random.default_rng(0)
    volume, differences = torch.from_numpy(rng.random(SHAPE)), torch.from_numpy(rng.random((SHAPE[0] - 1, *SHAPE[1:])))
    assert z_differences(volume).shape == differences.shape
    assert float((z_differences(volume) * differences).sum()) == pytest.approx(
        float((volume * z_differences_adjoint(differences)).sum())
    )
    shape = (24, *SHAPE[1:])  # longer than the few operator applications can spread a change along z
    mu = np.full(shape, 0.15, np.float32)
    projector = PlanarProjector(shape, (SPACING_MM,) * 3, 250.0, torch.from_numpy(mu))  # no axial blur
    settings = ConsistencySettings(admm_iterations=2, cg_steps=2, tv_weight=0.05, discrepancy=0.0)  # no early stop
    for step_slice, far_slice in ((0, -1), (-1, 0)):
        share = torch.zeros(shape)
        share[step_slice, 4:12, 4:10] = 1.0  # a step between the first (or last) slice and its one neighbour
        consistent = PlanarConsistency(projector, projector.forward(share) * 1000.0, settings)(share)
        assert float(consistent[step_slice].sum()) < float(share[step_slice].sum())  # the TV shrank the step
        assert float(consistent[far_slice].abs().max()) == 0.0  # a circular difference would reach the other end


def test_planar_consistency_brings_the_samples_to_the_counts_with_the_total_tied_and_no_negatives():
    activity, mu, measured = _phantom([8])
    prior = _tiny_prior()
    on = sample_activity(prior, measured, mu, spacing_mm=SPACING_MM, settings=SamplingSettings(steps=10, samples=2))
    off = sample_activity(prior, measured, mu, spacing_mm=SPACING_MM,
                          settings=SamplingSettings(steps=10, samples=1, consistency=None))  # fmt: skip
    with_consistency = planar_consistency(on.samples[0], mu, measured, spacing_mm=SPACING_MM)
    without = planar_consistency(off.samples[0], mu, measured, spacing_mm=SPACING_MM)
    assert with_consistency < 0.5 * without, (with_consistency, without)
    noisy = sample_activity(prior, measured, mu, spacing_mm=SPACING_MM,
                            settings=SamplingSettings(steps=5, samples=1, eta=1.0))  # fmt: skip
    for sample in (*on.samples, on.mean, off.samples[0], noisy.samples[0]):
        assert sample.dtype == np.float32 and sample.min() >= 0.0
        projected = data.planar_images(sample, mu, spacing_mm=SPACING_MM).sum()
        assert projected == pytest.approx(float(measured.sum()), rel=1e-4)
    labels = np.zeros(SHAPE, np.int32)
    labels[4:6, :, 5:7] = 1
    spread = organ_spread(on, labels, {1: "source line"}, SPACING_MM)["source line"]
    assert spread["activity_MBq"] > 0 and spread["activity_sd_MBq"] >= 0
    conditioned = _tiny_prior(pet_conditioning=True)
    with_pet = sample_activity(conditioned, measured, mu, spacing_mm=SPACING_MM, pet=mu + 0.01,
                               settings=SamplingSettings(steps=2, samples=1))  # fmt: skip
    assert with_pet.samples.shape == (1, *SHAPE) and with_pet.samples.min() >= 0.0
    with pytest.raises(ValueError, match="give the PET"):
        sample_activity(conditioned, measured, mu, spacing_mm=SPACING_MM, settings=SamplingSettings(steps=2))


def test_a_start_from_the_pet_keeps_its_anatomy_and_needs_the_pet():
    """From a PET equal to the truth noised to a small timestep the (untrained) prior's estimates stay near it, so
    the sample is closer to the truth than one from pure noise; the start needs a PET and a timestep in range. The
    activity fills the body (a warm box with a hot block), so that its shares lie inside the value map's range."""
    _, mu, _ = _phantom([8])
    activity = np.where(mu > 0, 1e3, 0.0).astype(np.float32)
    activity[4:6, 6:8, 5:7] *= 5.0
    measured = data.planar_images(activity, mu, total_counts=4e5, seed=3, spacing_mm=SPACING_MM)
    from_pet = sample_activity(_tiny_prior(), measured, mu, spacing_mm=SPACING_MM, pet=activity,
                               settings=SamplingSettings(steps=50, samples=1, start_step=20))  # fmt: skip
    from_noise = sample_activity(_tiny_prior(), measured, mu, spacing_mm=SPACING_MM,
                                 settings=SamplingSettings(steps=50, samples=1))  # fmt: skip
    truth = activity / activity.sum()  # the counts' total is set, not physical: compare the distributions
    errors = [float(np.abs(s.samples[0] / s.samples[0].sum() - truth).sum()) for s in (from_pet, from_noise)]
    assert errors[0] < 0.5 * errors[1], errors
    assert from_pet.samples.min() >= 0.0 and "PET noised to timestep 20" in SamplingSettings(start_step=20).record()[
        "start"]  # fmt: skip
    with pytest.raises(ValueError, match="needs the PET"):
        sample_activity(_tiny_prior(), measured, mu, spacing_mm=SPACING_MM,
                        settings=SamplingSettings(steps=5, start_step=300))  # fmt: skip
    for bad in (0, 1000):
        with pytest.raises(ValueError, match="start_step"):
            SamplingSettings(start_step=bad)


def test_body_support_keeps_the_samples_inside_the_body_and_the_counts_still_fitted():
    """The box's attenuating interior is the body: with it as the support, no activity lands in the air on the
    same antero-posterior line (which the planar images cannot tell from the body), and the consistency still
    brings the sample to the counts."""
    activity, mu, measured = _phantom([8])
    body = mu > 0
    settings = SamplingSettings(steps=10, samples=1)
    inside = sample_activity(_tiny_prior(), measured, mu, spacing_mm=SPACING_MM, settings=settings, body=body)
    anywhere = sample_activity(_tiny_prior(), measured, mu, spacing_mm=SPACING_MM, settings=settings)
    assert float(inside.samples[0][~body].max()) == 0.0 and float(anywhere.samples[0][~body].max()) > 0.0
    projected = data.planar_images(inside.samples[0], mu, spacing_mm=SPACING_MM).sum()
    assert projected == pytest.approx(float(measured.sum()), rel=1e-4)
    unconstrained = planar_consistency(
        sample_activity(_tiny_prior(), measured, mu, spacing_mm=SPACING_MM, body=body,
                        settings=SamplingSettings(steps=10, samples=1, consistency=None)).samples[0],
        mu, measured, spacing_mm=SPACING_MM,
    )  # fmt: skip
    assert planar_consistency(inside.samples[0], mu, measured, spacing_mm=SPACING_MM) < 0.5 * unconstrained
    projector = data.projector(mu, spacing_mm=SPACING_MM)
    with pytest.raises(ValueError, match="support: expected a mask"):
        PlanarConsistency(projector, measured, ConsistencySettings(), body[:-1])


@pytest.mark.parametrize("depths", [[8], [3, 12]], ids=["one source", "two sources on one AP line"])
def test_uncertainty_is_where_the_planar_images_leave_the_depth_open(depths):
    """Planar images fix the activity on lines without counts (zero, as the output is non-negative) but not the
    depth along a line with counts: one source, or two on one antero-posterior line that the two views cannot tell
    from one. The samples' spread must sit on the sources' line, not on the lines the data fix."""
    activity, mu, measured = _phantom(depths)
    samples = sample_activity(_tiny_prior(), measured, mu, spacing_mm=SPACING_MM,
                              settings=SamplingSettings(steps=25, samples=4))  # fmt: skip
    std = samples.std
    on_line = std[4:6, 1:-1, 5:7].mean()
    empty_lines = measured.max(axis=0) < 1.0
    off_line = std.transpose(1, 0, 2)[:, empty_lines].mean()
    assert on_line > 0 and on_line > 10 * off_line, (on_line, off_line)
    assert std.shape == SHAPE and std.dtype == np.float32


def test_bad_sampling_settings_are_refused():
    with pytest.raises(ValueError, match="samples and steps"):
        SamplingSettings(samples=0)
    with pytest.raises(ValueError, match="consistency settings"):
        ConsistencySettings(cg_steps=0)
    _, mu, measured = _phantom([8])
    with pytest.raises(ValueError, match="finite, >= 0"):
        sample_activity(_tiny_prior(), -measured, mu, spacing_mm=SPACING_MM, settings=SamplingSettings(steps=2))
    with pytest.raises(ValueError, match="planar images"):
        sample_activity(_tiny_prior(), measured[:, :-1], mu, spacing_mm=SPACING_MM, settings=SamplingSettings(steps=2))
