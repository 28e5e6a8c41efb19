"""Tests of DosimetryCore.evaluation.metrics: hand-computed values on small arrays, SSIM properties, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from DosimetryCore.evaluation import metrics, segments

# 2x2x2 truth 1..8 (z, y, x); the estimate differs only in the last voxel (8 -> 10).
TRUTH = np.arange(1.0, 9.0).reshape(2, 2, 2)
ESTIMATE = TRUTH.copy()
ESTIMATE[1, 1, 1] = 10.0
HIGH = TRUTH >= 5  # second slice: truth 5, 6, 7, 8


# --------------------------------------------------------------------------------------------
# NRMSE, MAE


def test_nrmse_rms_is_seed002_eq2():
    # sqrt(mean d^2) = sqrt(4 / 8); sqrt(mean x^2) = sqrt(204 / 8)
    assert metrics.nrmse(ESTIMATE, TRUTH) == pytest.approx(math.sqrt(4 / 204))
    # in the mask: sqrt(4 / 4) / sqrt((25 + 36 + 49 + 64) / 4)
    assert metrics.nrmse(ESTIMATE, TRUTH, HIGH) == pytest.approx(1 / math.sqrt(43.5))


def test_nrmse_other_normalisations():
    rmse = math.sqrt(0.5)
    assert metrics.nrmse(ESTIMATE, TRUTH, normalization="range") == pytest.approx(rmse / 7)
    assert metrics.nrmse(ESTIMATE, TRUTH, normalization="mean") == pytest.approx(rmse / 4.5)
    assert metrics.nrmse(TRUTH, TRUTH) == 0.0


def test_mae():
    assert metrics.mae(ESTIMATE, TRUTH) == pytest.approx(2 / 8)
    assert metrics.mae(ESTIMATE, TRUTH, HIGH) == pytest.approx(2 / 4)
    assert metrics.mae(ESTIMATE, TRUTH, ~HIGH) == 0.0


# --------------------------------------------------------------------------------------------
# VAA, AD, RC, MDE


def test_vaa_seed003_definition():
    truth = np.array([[[10.0, 10.0, 10.0], [10.0, 10.0, 0.0]]])
    # deviations: 4 % in, exactly 5 % out (strict "<"), -4 % in, 10 % out, 0 % in; last voxel has no truth
    estimate = np.array([[[10.4, 10.5, 9.6], [11.0, 10.0, 3.0]]])
    assert metrics.vaa(estimate, truth) == pytest.approx(3 / 5)  # default mask: truth != 0
    assert metrics.vaa(estimate, truth, alpha=0.2) == pytest.approx(1.0)
    first_row = np.zeros(truth.shape, dtype=bool)
    first_row[0, 0] = True
    assert metrics.vaa(estimate, truth, first_row) == pytest.approx(2 / 3)


def test_activity_deviation_percent():
    # sums 38 vs 36
    assert metrics.activity_deviation_percent(ESTIMATE, TRUTH) == pytest.approx(100 * 2 / 36)
    assert metrics.activity_deviation_percent(TRUTH, ESTIMATE) == pytest.approx(-100 * 2 / 38)
    assert metrics.activity_deviation_percent(ESTIMATE, TRUTH, HIGH) == pytest.approx(100 * 2 / 26)


def test_recovery_coefficient():
    assert metrics.recovery_coefficient(ESTIMATE, TRUTH, HIGH) == pytest.approx(28 / 26)
    truth = np.zeros((3, 3, 3))
    truth[1, 1, 1] = 9.0
    estimate = np.full((3, 3, 3), 1.0 / 3.0)  # blurred: same total, spread over 27 voxels
    centre = truth > 0
    assert metrics.recovery_coefficient(estimate, truth, centre) == pytest.approx(1 / 27)


def test_mean_dose_error_percent():
    # means 7 vs 6.5 in the mask
    assert metrics.mean_dose_error_percent(ESTIMATE, TRUTH, HIGH) == pytest.approx(100 * 0.5 / 6.5)
    assert metrics.mean_dose_error_percent(TRUTH, ESTIMATE, HIGH) == pytest.approx(100 * 0.5 / 7)
    signed = metrics.mean_dose_error_percent(TRUTH, ESTIMATE, HIGH, absolute=False)
    assert signed == pytest.approx(-100 * 0.5 / 7)


def test_segment_mean_dose_errors_percent():
    labelmap = np.zeros(TRUTH.shape, dtype=np.uint8)
    labelmap[0] = 1
    labelmap[1] = 2
    errors = segments.segment_mean_dose_errors_percent(ESTIMATE, TRUTH, labelmap, {2: "kidney", 1: "liver"})
    assert list(errors) == ["liver", "kidney"]
    assert errors["liver"] == 0.0
    assert errors["kidney"] == pytest.approx(100 * 0.5 / 6.5)
    assert errors["kidney"] == pytest.approx(metrics.mean_dose_error_percent(ESTIMATE, TRUTH, labelmap == 2))


# --------------------------------------------------------------------------------------------
# SSIM


def _reference_ssim_map(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    """Straightforward SSIM: explicit 11^3 Gaussian window (sigma 1.5), symmetric padding, sliding windows."""
    offsets = np.arange(-5, 6)
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    g /= g.sum()
    window = g[:, None, None] * g[None, :, None] * g[None, None, :]

    def local_mean(image: np.ndarray) -> np.ndarray:
        padded = np.pad(image, 5, mode="symmetric")
        patches = np.lib.stride_tricks.sliding_window_view(padded, window.shape)
        return np.einsum("abcijk,ijk->abc", patches, window)

    mx, my = local_mean(x), local_mean(y)
    sxx = local_mean(x * x) - mx**2
    syy = local_mean(y * y) - my**2
    sxy = local_mean(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))


def test_ssim_matches_straightforward_implementation():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, size=(6, 7, 8))
    y = x + rng.normal(0, 10, size=x.shape)
    expected = _reference_ssim_map(x, y, 100.0)
    np.testing.assert_allclose(metrics.ssim_map(y, x, data_range=100.0), expected, rtol=1e-10, atol=1e-12)
    mask = x > 50
    assert metrics.ssim(y, x, data_range=100.0, mask=mask) == pytest.approx(expected[mask].mean(), rel=1e-10)
    assert metrics.ssim(y, x, data_range=100.0) == pytest.approx(expected.mean(), rel=1e-10)


def test_ssim_of_constant_images_is_luminance_term():
    # constant a, b: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 L)^2
    a, b, data_range = 2.0, 1.0, 4.0
    c1 = (0.01 * data_range) ** 2
    value = metrics.ssim(np.full((3, 3, 3), a), np.full((3, 3, 3), b), data_range=data_range)
    assert value == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1))


def test_ssim_identity_symmetry_and_noise():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(10, 10, 10))
    assert metrics.ssim(x, x, data_range=1.0) == pytest.approx(1.0, abs=1e-12)
    y = x + rng.normal(0, 0.1, size=x.shape)
    assert metrics.ssim(x, y, data_range=1.0) == pytest.approx(metrics.ssim(y, x, data_range=1.0))
    noise = rng.normal(0, 1, size=x.shape)
    values = [metrics.ssim(x + level * noise, x, data_range=1.0) for level in (0.01, 0.05, 0.2, 1.0)]
    assert np.all(np.diff(values) < 0)
    assert values[0] < 1.0


def test_ssim_scale_invariance_with_data_range():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, size=(5, 6, 7))
    y = x + rng.normal(0, 0.05, size=x.shape)
    scaled = metrics.ssim(1e6 * y, 1e6 * x, data_range=1e6)  # e.g. Bq/mL
    assert scaled == pytest.approx(metrics.ssim(y, x, data_range=1.0), rel=1e-9)


def test_ssim_requires_data_range():
    with pytest.raises(TypeError):
        metrics.ssim(TRUTH, TRUTH)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="data_range"):
        metrics.ssim(TRUTH, TRUTH, data_range=0.0)


def test_torch_tensors_are_accepted():
    import torch

    assert metrics.nrmse(torch.from_numpy(ESTIMATE), torch.from_numpy(TRUTH)) == pytest.approx(math.sqrt(4 / 204))
    assert metrics.ssim(torch.from_numpy(TRUTH), TRUTH, data_range=7.0) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# per-segment statistics


def test_segment_statistics_hand_computed():
    values = np.arange(1.0, 9.0).reshape(2, 2, 2)
    labelmap = np.array([[[0, 1], [1, 1]], [[2, 2], [2, 2]]], dtype=np.int16)
    rows = segments.segment_statistics(values, labelmap, {1: "lesion", 2: "kidney"}, voxel_volume_ml=0.5)
    lesion, kidney = rows
    assert lesion == pytest.approx(
        {
            "segment": "lesion",
            "label": 1,
            "voxels": 3,
            "volume_ml": 1.5,
            "mean": 3.0,
            "std": math.sqrt(2 / 3),
            "min": 2.0,
            "max": 4.0,
            "sum_times_volume": 4.5,
        }
    )
    assert kidney["segment"] == "kidney" and kidney["voxels"] == 4
    assert kidney["mean"] == pytest.approx(6.5)
    assert kidney["std"] == pytest.approx(math.sqrt(1.25))
    assert kidney["sum_times_volume"] == pytest.approx(13.0)
    assert isinstance(kidney["voxels"], int) and isinstance(kidney["mean"], float)


def test_dose_volume_percents_on_ramp():
    rng = np.random.default_rng(3)
    ramp = rng.permutation(np.arange(1.0, 101.0)).reshape(4, 5, 5)  # 1..100 Gy, shuffled in space
    labelmap = np.ones(ramp.shape, dtype=np.uint8)
    (row,) = segments.segment_statistics(ramp, labelmap, {1: "ramp"}, 0.1, dose_volume_percents=(2, 50, 98, 100))
    # D_x = minimum over the hottest x % (= ceil(x) of 100 voxels): the ceil(x)-th largest value
    assert (row["D2%"], row["D50%"], row["D98%"], row["D100%"]) == (99.0, 51.0, 3.0, 1.0)
    assert row["volume_ml"] == pytest.approx(10.0)
    assert row["sum_times_volume"] == pytest.approx(505.0)


def test_dose_volume_percents_round_up_per_segment():
    values = np.array([[[1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 40.0]]])
    labelmap = np.array([[[5, 5, 5, 7, 7, 7, 7]]])
    rows = segments.segment_statistics(values, labelmap, {5: "a", 7: "b"}, 1.0, dose_volume_percents=(33, 34, 50, 0.5))
    a, b = rows
    # 3 voxels: 33 % -> 0.99 -> 1 voxel; 34 % -> 1.02 -> 2 voxels; 50 % -> 1.5 -> 2; 0.5 % -> 1
    assert (a["D33%"], a["D34%"], a["D50%"], a["D0.5%"]) == (3.0, 2.0, 2.0, 3.0)
    # 4 voxels: 33 % -> 2 voxels; 34 % -> 2; 50 % -> exactly 2; 0.5 % -> 1
    assert (b["D33%"], b["D34%"], b["D50%"], b["D0.5%"]) == (30.0, 30.0, 30.0, 40.0)


def test_segment_statistics_ignores_unnamed_labels_and_accepts_integral_float_labels():
    values = np.arange(1.0, 9.0).reshape(2, 2, 2)
    labelmap = np.array([[[-3, 1], [1, 1]], [[200, 200], [9, 9]]], dtype=np.float32)
    (row,) = segments.segment_statistics(values, labelmap, {1: "lesion"}, 1.0)
    assert row["voxels"] == 3 and row["mean"] == pytest.approx(3.0)


# --------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "call",
    [
        lambda e, t, m: metrics.nrmse(e, t, m),
        lambda e, t, m: metrics.mae(e, t, m),
        lambda e, t, m: metrics.vaa(e, t, m),
        lambda e, t, m: metrics.activity_deviation_percent(e, t, m),
        lambda e, t, m: metrics.recovery_coefficient(e, t, m),
        lambda e, t, m: metrics.mean_dose_error_percent(e, t, m),
        lambda e, t, m: metrics.ssim(e, t, data_range=7.0, mask=m),
    ],
    ids=["nrmse", "mae", "vaa", "ad", "rc", "mde", "ssim"],
)
def test_common_input_errors(call):
    with pytest.raises(ValueError, match=r"estimate: shape \(2, 2, 1\) does not match truth"):
        call(ESTIMATE[..., :1], TRUTH, HIGH)
    with pytest.raises(ValueError, match="truth: 1 voxel"):
        call(ESTIMATE, np.where(TRUTH == 3, np.nan, TRUTH), HIGH)
    with pytest.raises(ValueError, match="estimate: 1 voxel.*NaN or infinite"):
        call(np.where(TRUTH == 3, np.inf, TRUTH), TRUTH, HIGH)
    with pytest.raises(ValueError, match="mask: selects no voxels"):
        call(ESTIMATE, TRUTH, np.zeros(TRUTH.shape, dtype=bool))
    with pytest.raises(ValueError, match=r"mask: shape \(2, 2\)"):
        call(ESTIMATE, TRUTH, HIGH[0])


def test_metric_specific_errors():
    zero = np.zeros_like(TRUTH)
    with pytest.raises(ValueError, match="normalization"):
        metrics.nrmse(ESTIMATE, TRUTH, normalization="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="truth: range normaliser is 0"):
        metrics.nrmse(ESTIMATE, np.ones_like(TRUTH), normalization="range")
    with pytest.raises(ValueError, match="mask: includes 1 voxel"):
        metrics.vaa(ESTIMATE, np.where(TRUTH == 1, 0, TRUTH), TRUTH > 0.5)
    with pytest.raises(ValueError, match="truth != 0"):
        metrics.vaa(ESTIMATE, zero)
    with pytest.raises(ValueError, match="alpha"):
        metrics.vaa(ESTIMATE, TRUTH, alpha=-0.05)
    with pytest.raises(ValueError, match="truth: sums to 0"):
        metrics.activity_deviation_percent(ESTIMATE, zero)
    with pytest.raises(ValueError, match="truth: mean is 0"):
        metrics.recovery_coefficient(ESTIMATE, zero, HIGH)
    with pytest.raises(ValueError, match="estimate: SSIM needs"):
        metrics.ssim(TRUTH[0, 0], TRUTH[0, 0], data_range=1.0)
    with pytest.raises(ValueError, match="estimate: expected real numeric"):
        metrics.mae(TRUTH.astype(complex), TRUTH)
    with pytest.raises(ValueError, match="estimate: empty array"):
        metrics.mae(np.zeros((0, 2, 2)), np.zeros((0, 2, 2)))


def test_segment_errors():
    values = np.arange(1.0, 9.0).reshape(2, 2, 2)
    labelmap = np.ones(values.shape, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"segment\(s\) 'spleen' \(label 4\) have no voxels"):
        segments.segment_statistics(values, labelmap, {1: "liver", 4: "spleen"}, 1.0)
    with pytest.raises(ValueError, match="labelmap: shape"):
        segments.segment_statistics(values, labelmap[0], {1: "liver"}, 1.0)
    with pytest.raises(ValueError, match="labelmap: expected integer labels"):
        segments.segment_statistics(values, labelmap + 0.5, {1: "liver"}, 1.0)
    with pytest.raises(ValueError, match="values: 1 voxel"):
        segments.segment_statistics(np.where(values == 2, np.nan, values), labelmap, {1: "liver"}, 1.0)
    with pytest.raises(ValueError, match="voxel_volume_ml"):
        segments.segment_statistics(values, labelmap, {1: "liver"}, 0.0)
    with pytest.raises(ValueError, match="names"):
        segments.segment_statistics(values, labelmap, {}, 1.0)
    with pytest.raises(ValueError, match="names: label '1'"):
        segments.segment_statistics(values, labelmap, {"1": "liver"}, 1.0)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="dose_volume_percents"):
        segments.segment_statistics(values, labelmap, {1: "liver"}, 1.0, dose_volume_percents=(0,))
    labelmap[1] = 2
    with pytest.raises(ValueError, match="names: segment names must be unique"):
        segments.segment_mean_dose_errors_percent(values, values, labelmap, {1: "kidney", 2: "kidney"})
    with pytest.raises(ValueError, match=r"truth: mean is 0 in segment\(s\) 'b' \(label 2\)"):
        segments.segment_mean_dose_errors_percent(values, np.where(labelmap == 2, 0.0, 1.0), labelmap, {1: "a", 2: "b"})
