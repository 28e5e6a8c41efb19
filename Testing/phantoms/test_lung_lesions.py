"""DosimetryCore.phantoms.add_lung_lesion: a soft-tissue lesion at the lung's edge, the total activity kept."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from DosimetryCore.core.volume import array_from_image, voxel_volume_ml
from DosimetryCore.phantoms import HU, LABELS, add_lung_lesion, make_torso


@pytest.fixture(scope="module")
def torso():
    return make_torso((64, 48, 80), (8.0, 8.0, 8.0), seed=2, n_lesions=1, total_activity_MBq=2000.0)


def test_the_lesion_lies_in_lung_at_its_edge_and_keeps_the_total(torso):
    case = add_lung_lesion(torso, np.random.default_rng(1), diameter_mm=(30.0, 30.0))
    before, after = array_from_image(torso.labels), array_from_image(case.labels)
    lesion = after == LABELS["lesion_lung"]
    lungs = np.isin(before, [LABELS["lung_left"], LABELS["lung_right"]])
    assert lesion.sum() > 3 and np.all(lungs[lesion]) and np.array_equal(after[~lesion], before[~lesion])
    assert (lesion & ndimage.binary_erosion(lungs, iterations=3) == 0).any()  # reaches the edge region
    assert np.all(array_from_image(case.ct)[lesion] == HU["lesion_lung"])
    activity = array_from_image(case.activity).astype(np.float64)
    total = activity.sum() * voxel_volume_ml(case.activity)
    assert total == pytest.approx(
        array_from_image(torso.activity).sum(dtype=np.float64) * voxel_volume_ml(case.activity), rel=1e-5
    )
    body_mean = total / (np.count_nonzero(after) * voxel_volume_ml(case.activity))
    assert 10.0 <= activity[lesion].mean() / body_mean <= 60.0
    assert case.lesions[-1].site == "lung" and case.provenance["lung_lesion"]["diameter_mm"] == 30.0
    assert case.label_names[LABELS["lesion_lung"]] == "lesion_lung"


def test_the_same_generator_state_gives_the_same_lesion(torso):
    first = add_lung_lesion(torso, np.random.default_rng(7))
    second = add_lung_lesion(torso, np.random.default_rng(7))
    np.testing.assert_array_equal(array_from_image(first.activity), array_from_image(second.activity))
