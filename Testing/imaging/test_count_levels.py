"""DosimetryCore.imaging.count_levels: SPECT of one activity at fixed total counts (Li et al.'s four levels)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from DosimetryCore.imaging import count_levels, simulation
from DosimetryCore.phantoms import make_torso

FAST = simulation.Acquisition(views=24)


@pytest.fixture(scope="module")
def torso():
    return make_torso(40, 16.0, seed=5, tracer="DOTATATE")


def test_levels_keep_the_activity_and_only_the_noise_grows(torso):
    high, low = count_levels.spect_at_count_levels(
        torso.activity, torso.ct, (1.9e7, 3.0e6), FAST, iterations=4, subsets=4, seed=3, device="cpu"
    )
    truth = sitk.GetArrayFromImage(torso.activity)
    for image in (high, low):
        values = sitk.GetArrayFromImage(image)
        assert image.GetMetaData("deepdosimetry.unit") == "Bq/mL" and values.shape == truth.shape
        assert values.sum() == pytest.approx(truth.sum(), rel=0.05)
    reference = sitk.GetArrayFromImage(  # 1e12 counts: practically noise-free
        count_levels.spect_at_count_levels(torso.activity, torso.ct, (1e12,), FAST, iterations=4, subsets=4,
                                           seed=3, device="cpu")[0]
    )  # fmt: skip
    body = truth > 0
    noise = [np.std((sitk.GetArrayFromImage(image) - reference)[body]) for image in (high, low)]
    assert noise[1] > 1.5 * noise[0]  # 6.3x fewer counts: about 2.5x the noise


def test_the_same_seed_gives_the_same_images_and_bad_levels_are_refused(torso):
    kwargs = {"acquisition": FAST, "iterations": 1, "subsets": 4, "seed": 9, "device": "cpu"}
    first = count_levels.spect_at_count_levels(torso.activity, torso.ct, (4.4e6,), **kwargs)[0]
    second = count_levels.spect_at_count_levels(torso.activity, torso.ct, (4.4e6,), **kwargs)[0]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(first), sitk.GetArrayFromImage(second))
    with pytest.raises(ValueError, match="total_counts"):
        count_levels.spect_at_count_levels(torso.activity, torso.ct, (0.0,), **kwargs)
