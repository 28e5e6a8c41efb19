"""DoseRateCNNLib.data: one training case (true activity, Monte Carlo label, SPECT at count levels, VDK)."""

from __future__ import annotations

import numpy as np
import pytest

from DoseRateCNNLib.data import DoseCaseSettings, simulate_dose_case

TINY = DoseCaseSettings(
    dose_spacing_mm=16.0, spect_spacing_mm=16.0, count_levels=(1.9e7, 3.0e6), iterations=2, subsets=4, views=24,
    photon_histories=20_000, batches=4,
)  # fmt: skip
VOXEL_ML = 16.0**3 / 1000.0


@pytest.fixture(scope="module")
def case():
    return simulate_dose_case(3, TINY, device="cpu")


def test_a_case_holds_every_array_on_one_grid(case):
    arrays, record = case
    expected = {"activity", "hu", "density", "labels", "mc", "spect_0", "spect_1", "vdk_0", "vdk_1"}
    assert set(arrays) == expected
    assert len({array.shape for array in arrays.values()}) == 1
    assert record["shape_zyx"] == list(arrays["hu"].shape) and record["sampled"]["tracer"] in ("PSMA", "DOTATATE")
    assert 2 <= record["sampled"]["n_lesions"] <= 6


def test_labels_and_inputs_are_physical(case):
    arrays, record = case
    body = arrays["labels"] > 0
    for name in ("mc", "vdk_0", "vdk_1"):
        assert (arrays[name] >= 0).all() and (arrays[name][~body] == 0).all(), name
    truth_MBq = arrays["activity"].sum(dtype=np.float64) * VOXEL_ML / 1e6
    assert truth_MBq == pytest.approx(record["sampled"]["total_activity_MBq"], rel=0.02)
    for level in (0, 1):
        assert arrays[f"spect_{level}"].sum(dtype=np.float64) * VOXEL_ML / 1e6 == pytest.approx(truth_MBq, rel=0.05)
    liver = arrays["labels"] == next(int(k) for k, v in record["label_names"].items() if v == "liver")
    assert arrays["vdk_0"][liver].mean() == pytest.approx(arrays["mc"][liver].mean(), rel=0.25)
    assert record["mc_mean_relative_uncertainty"]["liver"] < 0.05


def test_the_same_seed_gives_the_same_case(case):
    first, _ = case
    second, _ = simulate_dose_case(3, TINY, device="cpu")
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
