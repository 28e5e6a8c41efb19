"""DosimetryCore.imaging.conjugate_view: organ activity from anterior/posterior planar images (MIRD 16)."""

from __future__ import annotations

import numpy as np
import pytest

from DosimetryCore.imaging.collimators import collimator_response
from DosimetryCore.imaging.conjugate_view import conjugate_view_activities, self_attenuation_factor
from DosimetryCore.imaging.projection import simulate_planar
from DosimetryCore.physics.tissue import mu_per_cm_from_hu

SPACING = (4.0, 4.0, 4.0)
PLANAR = {"sensitivity_cps_per_MBq": 9.5, "time_s": 600.0}


def _body_with_organs(background_Bq_per_mL: float):
    """A 240 mm thick water slab in air with two 56 mm spheres: 'front' near the anterior face, 'deep' behind."""
    shape = (48, 80, 64)
    z, y, x = np.indices(shape)
    hu = np.full(shape, -1000.0, np.float32)
    hu[:, 10:70, 4:60] = 0.0
    labels = np.zeros(shape, np.uint8)
    activity = np.where(hu > -500, background_Bq_per_mL, 0.0).astype(np.float32)
    for label, centre in ((1, (24, 22, 18)), (2, (24, 52, 44))):
        sphere = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= 7**2
        labels[sphere] = label
        activity[sphere] = 2e5 if label == 1 else 1e5
    return activity, hu, labels


def _planar(activity, hu):
    mu = mu_per_cm_from_hu(hu, 0.208).astype(np.float32)
    response = collimator_response("SIEMENS-MELP", 208.0, 3.8)
    counts = simulate_planar(activity, SPACING, sensitivity_cps_per_MBq=9.5, acquisition_time_s=600.0,
                             distance_mm=250.0, mu_per_cm=mu, response=response, noise=False)  # fmt: skip
    return counts[0].numpy(), counts[1].numpy(), mu


def _true_MBq(activity, labels, label):
    return float(activity[labels == label].sum()) * np.prod(SPACING) / 1000.0 * 1e-6


def test_self_attenuation_factor_is_one_for_thin_sources_and_below_one_for_thick():
    assert self_attenuation_factor(np.array([0.0]))[0] == 1.0
    assert self_attenuation_factor(np.array([1.0]))[0] == pytest.approx(0.5 / np.sinh(0.5))


def test_organs_in_a_cold_body_are_recovered_at_any_depth():
    activity, hu, labels = _body_with_organs(0.0)
    anterior, posterior, mu = _planar(activity, hu)
    rows = conjugate_view_activities(anterior, posterior, mu, labels, {1: "front", 2: "deep"}, SPACING,
                                     background=False, **PLANAR)  # fmt: skip
    for row in rows:
        # the 10 mm ROI margin misses the far tails of the collimator blur: 5-6 % low at both depths
        assert row["activity_MBq"] == pytest.approx(_true_MBq(activity, labels, row["label"]), rel=0.07), row


def test_background_subtraction_removes_the_tissue_over_and_under_the_organ():
    activity, hu, labels = _body_with_organs(2e4)
    anterior, posterior, mu = _planar(activity, hu)
    names = {1: "front", 2: "deep"}
    plain = conjugate_view_activities(anterior, posterior, mu, labels, names, SPACING, background=False, **PLANAR)
    buijs = conjugate_view_activities(anterior, posterior, mu, labels, names, SPACING, **PLANAR)
    for without, with_background in zip(plain, buijs, strict=True):
        truth = _true_MBq(activity, labels, without["label"])
        assert abs(with_background["activity_MBq"] / truth - 1) < 0.1
        assert abs(with_background["activity_MBq"] / truth - 1) < abs(without["activity_MBq"] / truth - 1)
        assert 0 < with_background["background_subtracted_fraction"] < 1


def test_planar_images_off_the_volumes_grid_are_refused():
    activity, hu, labels = _body_with_organs(0.0)
    anterior, posterior, mu = _planar(activity, hu)
    with pytest.raises(ValueError, match="coronal projection"):
        conjugate_view_activities(anterior[:, :-1], posterior, mu, labels, {1: "a"}, SPACING, **PLANAR)
    with pytest.raises(ValueError, match="finite and >= 0"):
        conjugate_view_activities(-anterior, posterior, mu, labels, {1: "a"}, SPACING, **PLANAR)
