"""DosimetryCore.learning.losses: torch SSIM equal to the metric, differentiable, masked per sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from DosimetryCore.evaluation import metrics
from DosimetryCore.learning import losses


def _pair(seed: int, shape=(12, 14, 16)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = ndimage.gaussian_filter(rng.gamma(2.0, 1.0, shape), 1.0) * (rng.random(shape) > 0.3)
    estimate = ndimage.gaussian_filter(truth, 1.2) + 0.05 * rng.standard_normal(shape)
    return estimate, truth


def test_taps_are_scipys_11_voxel_window():
    taps = losses.gaussian_taps(1.5, torch.float64)
    impulse = np.zeros(31)
    impulse[15] = 1.0
    reference = ndimage.gaussian_filter1d(impulse, 1.5, truncate=metrics.SSIM_TRUNCATE)[10:21]
    assert taps.numel() == 11
    np.testing.assert_allclose(taps.numpy(), reference, rtol=1e-12)


def test_gaussian_filter_equals_scipy_reflect_borders():
    image = np.random.default_rng(0).random((7, 9, 11))
    ours = losses.gaussian_filter(torch.from_numpy(image)[None, None], 1.5)[0, 0].numpy()
    reference = ndimage.gaussian_filter(image, 1.5, mode="reflect", truncate=metrics.SSIM_TRUNCATE)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-14)


def test_ssim_map_equals_the_metric():
    estimate, truth = _pair(1)
    data_range = float(truth.max() - truth.min())
    ours = losses.ssim_map(torch.from_numpy(estimate)[None, None], torch.from_numpy(truth)[None, None], data_range)
    reference = metrics.ssim_map(estimate, truth, data_range=data_range)
    np.testing.assert_allclose(ours[0, 0].numpy(), reference, rtol=1e-9, atol=1e-12)


def test_masked_ssim_is_the_metric_per_sample_and_one_for_identical_images():
    pairs = [_pair(seed) for seed in (2, 3)]
    estimates = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
    truths = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
    ranges = truths.flatten(1).amax(1).view(-1, 1, 1, 1, 1)
    values = losses.masked_ssim(estimates, truths, truths > 0, ranges)
    for index, (estimate, truth) in enumerate(pairs):
        expected = metrics.ssim(estimate, truth, data_range=float(truth.max()), mask=truth > 0)
        assert values[index].item() == pytest.approx(expected, rel=1e-9)
    assert losses.masked_ssim(truths, truths, truths > 0, ranges).numpy() == pytest.approx([1.0, 1.0], abs=1e-12)


def test_an_empty_mask_averages_the_whole_image():
    estimate, truth = _pair(4)
    e, t = torch.from_numpy(estimate)[None, None], torch.from_numpy(truth)[None, None]
    whole = losses.masked_ssim(e, t, torch.zeros_like(t, dtype=torch.bool), 1.0)
    assert whole.item() == pytest.approx(metrics.ssim(estimate, truth, data_range=1.0), rel=1e-9)


def test_ssim_has_gradients_and_ascending_them_raises_it():
    estimate, truth = _pair(5)
    prediction = torch.from_numpy(estimate)[None, None].float().requires_grad_(True)
    target = torch.from_numpy(truth)[None, None].float()
    before = losses.masked_ssim(prediction, target, target > 0, 1.0).sum()
    before.backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0
    with torch.no_grad():
        after = losses.masked_ssim(prediction + 0.5 * prediction.grad, target, target > 0, 1.0).sum()
    assert after > before


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="sigma"):
        losses.gaussian_taps(0.0)
    with pytest.raises(ValueError, match="shape"):
        losses.ssim_map(torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 1, 8, 8, 9), 1.0)
    with pytest.raises(ValueError, match="radius"):
        losses.gaussian_filter(torch.zeros(1, 1, 3, 8, 8))
    with pytest.raises(ValueError, match="B, C"):
        losses.gaussian_filter(torch.zeros(8, 8, 8))
