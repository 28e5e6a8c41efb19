"""DoseRateCNNLib.region_weights and the region-weighted loss: every region counts as (error / VDK's error)^2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from DoseRateCNNLib.region_weights import MIN_REGION_VOXELS, region_ids, region_weight_map
from DoseRateCNNLib.training_data import MEAN_WEIGHT, body_weighted_mse, region_mean_weighted_mse, region_weighted_mse

NAMES = {"1": "body", "2": "liver", "3": "lesion_liver"}


def _case() -> tuple[np.ndarray, np.ndarray]:
    """Labels (1, 8, 24): body, a liver of 72 voxels holding two separate lesions of 9 voxels, air outside."""
    labels = np.zeros((1, 8, 24), dtype=np.int16)
    labels[0, :, :20] = 1
    labels[0, 1:7, 2:14] = 2
    labels[0, 1:4, 3:6] = 3
    labels[0, 4:7, 9:12] = 3
    truth = np.where(labels == 1, 1.0, np.where(labels == 2, 4.0, np.where(labels == 3, 40.0, 0.0)))
    return labels, truth


def test_regions_are_organs_and_each_lesion():
    labels, _ = _case()
    ids = region_ids(labels, NAMES)
    assert (ids[labels == 0] == 0).all()
    assert len(np.unique(ids[labels == 3])) == 2  # two lesions, two regions
    assert len(np.unique(ids)) == 1 + 2 + 2  # outside, body, liver, two lesions


def test_each_region_contributes_the_same_for_the_baseline():
    labels, truth = _case()
    rng = np.random.default_rng(0)
    scale = np.where(labels == 3, 0.3, np.where(labels == 2, 0.2, 0.5)) * truth  # errors of different size per region
    baseline = truth + scale * rng.choice([-1.0, 1.0], size=truth.shape)
    weights = region_weight_map(labels, NAMES, truth, [baseline])
    body = labels > 0
    assert (weights[~body] == 0).all() and weights[body].mean() == pytest.approx(1.0, rel=1e-5)
    ids = region_ids(labels, NAMES)
    present = np.unique(ids[body])
    contributions = np.bincount(ids.ravel(), weights=(weights * (baseline - truth) ** 2).ravel())[present]
    np.testing.assert_allclose(contributions, contributions[0], rtol=1e-4)
    # in plain squared error each lesion would outweigh the body by far
    plain = np.bincount(ids.ravel(), weights=((baseline - truth) ** 2).ravel())[present]
    assert plain[2:].min() > 10 * plain[0]


def test_floors_keep_an_exact_baseline_and_a_tiny_region_from_taking_over():
    labels, truth = _case()
    baseline = truth * 1.2
    baseline[labels == 2] = truth[labels == 2]  # exact in the liver: its weight comes from the 5 % floor
    weights = region_weight_map(labels, NAMES, truth, [baseline, baseline])
    liver_weight, body_weight = weights[labels == 2][0], weights[labels == 1][0]
    n_liver, n_body = (labels == 2).sum(), (labels == 1).sum()
    body_mean = truth[labels > 0].mean()
    body_mse = max((0.2 * 1.0) ** 2, (0.05 * body_mean) ** 2)
    expected_ratio = (n_body * body_mse) / (n_liver * (0.05 * max(4.0, body_mean)) ** 2)
    assert liver_weight / body_weight == pytest.approx(expected_ratio, rel=1e-4)
    single = labels.copy()
    single[0, 0, 17] = 3  # a one-voxel lesion counts as MIN_REGION_VOXELS voxels
    one = region_weight_map(single, NAMES, np.where(single == 3, 40.0, truth), [np.where(single == 3, 48.0, baseline)])
    assert one[0, 0, 17] / one[0, 1, 3] == pytest.approx(9 / MIN_REGION_VOXELS, rel=1e-4)
    with pytest.raises(ValueError, match="at least one baseline"):
        region_weight_map(labels, NAMES, truth, [])
    with pytest.raises(ValueError, match="no body"):
        region_weight_map(np.zeros_like(labels), NAMES, truth, [baseline])


def test_the_region_weighted_loss_weighs_body_voxels():
    prediction = torch.zeros(1, 1, 1, 2, 2)
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).reshape(1, 1, 1, 2, 2)
    body = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).reshape(1, 1, 1, 2, 2)
    ones = torch.ones_like(body)
    unweighted = region_weighted_mse(prediction, torch.cat((target, body, ones), dim=1))
    assert unweighted.item() == pytest.approx(body_weighted_mse(prediction, torch.cat((target, body), dim=1)).item())
    weights = torch.tensor([[3.0, 0.0], [5.0, 5.0]]).reshape(1, 1, 1, 2, 2)  # outside voxels' weights unused
    weighted = region_weighted_mse(prediction, torch.cat((target, body, weights), dim=1))
    assert weighted.item() == pytest.approx(0.7 * (3.0 * 1 + 0.0 * 1) / 2 + 0.3 * 0.0)


def test_the_region_mean_term_counts_a_regions_mean_error_not_its_spread():
    """Two items of 2 x 2 voxels; region 1 (weight 2) on the top row, region 2 (weight 1) on the bottom row of
    item 0, item 1 all outside the body. A bias (+1, +1) in region 1 adds w n bias^2 = 2 x 2 x 1; errors of
    (+1, -1) in region 2 have no mean and add nothing."""
    label = torch.zeros(2, 1, 1, 2, 2)
    body = torch.zeros(2, 1, 1, 2, 2)
    body[0] = 1.0
    weights = torch.tensor([[2.0, 2.0], [1.0, 1.0]]).reshape(1, 1, 1, 2, 2).repeat(2, 1, 1, 1, 1) * body
    ids = torch.tensor([[1.0, 1.0], [2.0, 2.0]]).reshape(1, 1, 1, 2, 2).repeat(2, 1, 1, 1, 1) * body
    prediction = torch.tensor([[1.0, 1.0], [1.0, -1.0]]).reshape(1, 1, 1, 2, 2).repeat(2, 1, 1, 1, 1) * body
    target = torch.cat((label, body, weights, ids), dim=1)
    voxel = region_weighted_mse(prediction, target[:, :3])
    assert voxel.item() == pytest.approx(0.7 * (2 * 2 + 1 * 2) / 4)
    combined = region_mean_weighted_mse(prediction, target)
    assert combined.item() == pytest.approx(voxel.item() + MEAN_WEIGHT * 0.7 * (2 * 2 * 1.0**2) / 4)
    unbiased = prediction.clone()
    unbiased[0, 0, 0, 0] = torch.tensor([1.0, -1.0])
    assert region_mean_weighted_mse(unbiased, target).item() == pytest.approx(
        region_weighted_mse(unbiased, target[:, :3]).item()
    )
    prediction.requires_grad_(True)
    region_mean_weighted_mse(prediction, target).backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad[1].abs().sum() == 0
