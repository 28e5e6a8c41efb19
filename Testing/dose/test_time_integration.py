"""DosimetryCore.dose.time_integration against analytic integrals of sampled dose-rate curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from DosimetryCore.dose import time_integration as ti

LU177_HALF_LIFE_H = 6.647 * 24  # ICRP 107: 6.647 d
TIMES_H = (4.0, 24.0, 96.0, 168.0)  # the SNMMI 177Lu dosimetry challenge's time points


def test_the_physical_decay_constant_is_lutetium_177s():
    assert ti.physical_decay_per_h() == pytest.approx(math.log(2) / LU177_HALF_LIFE_H, rel=1e-3)


def test_a_mono_exponential_at_three_time_points_integrates_within_half_a_percent():
    a, half_life = 0.8, 60.0  # Gy/h at t = 0, h
    decay = math.log(2) / half_life
    times = np.array([24.0, 96.0, 168.0])
    result = ti.integrate_segment(times, a * np.exp(-decay * times), model="mono")
    assert result.integral == pytest.approx(a / decay, rel=0.005)
    assert result.effective_half_life_h == pytest.approx(half_life, rel=1e-3)


def test_a_bi_exponential_integrates_within_two_percent_and_is_chosen_by_aicc():
    a, k1, k2 = 1.2, math.log(2) / 50.0, math.log(2) / 3.0  # uptake with a 3 h half-time, clearance of 50 h
    times = np.array([1.0, 4.0, 24.0, 48.0, 96.0, 168.0])
    values = a * (np.exp(-k1 * times) - np.exp(-k2 * times))
    result = ti.integrate_segment(times, values)
    assert result.model == "bi" and set(result.candidates) == {"mono", "bi"}
    assert result.integral == pytest.approx(a * (1 / k1 - 1 / k2), rel=0.02)


def test_the_trapezoid_is_a_linear_rise_trapezoids_and_a_physical_tail():
    decay = ti.physical_decay_per_h()
    result = ti.integrate_segment([4.0, 24.0], [2.0, 1.0], model="trapezoid")
    assert result.integral == pytest.approx(2.0 * 4.0 / 2 + (2.0 + 1.0) / 2 * 20.0 + 1.0 / decay)
    assert math.isnan(result.uncertainty) and result.effective_half_life_h is None


def test_the_fit_uncertainty_grows_with_noise():
    rng = np.random.default_rng(3)
    decay = math.log(2) / 70.0
    times = np.array(TIMES_H)
    clean = np.exp(-decay * times)
    quiet = ti.integrate_segment(times, clean * (1 + 0.01 * rng.standard_normal(4)), model="mono")
    noisy = ti.integrate_segment(times, clean * (1 + 0.10 * rng.standard_normal(4)), model="mono")
    assert 0 < quiet.uncertainty < noisy.uncertainty
    assert quiet.integral == pytest.approx(1 / decay, rel=0.03)


def test_a_single_time_point_needs_a_half_life():
    with pytest.raises(ValueError, match="one time point needs a stated effective half-life"):
        ti.integrate_segment([48.0], [0.5])
    result = ti.integrate_segment([48.0], [0.5], effective_half_life_h=48.0)
    decay = math.log(2) / 48.0
    assert result.model == "single" and result.integral == pytest.approx(0.5 * math.exp(decay * 48.0) / decay)


@pytest.mark.parametrize(
    ("times", "values", "message"),
    [([24.0, 4.0], [1.0, 2.0], "strictly increasing"), ([0.0, 4.0], [1.0, 1.0], "> 0"),
     ([4.0, 24.0], [1.0, -1.0], ">= 0"), ([4.0, 24.0], [1.0], "one time per value")],
)  # fmt: skip
def test_bad_series_are_refused(times, values, message):
    with pytest.raises(ValueError, match=message):
        ti.integrate_segment(times, values)


def test_voxels_are_integrated_at_once_with_the_trapezoid_where_the_fit_fails():
    times = np.array(TIMES_H)
    decay = math.log(2) / 40.0
    values = np.zeros((4, 3))
    values[:, 0] = 2.0 * np.exp(-decay * times)  # mono-exponential
    values[:, 1] = [1.0, 2.0, 3.0, 4.0]  # rising: no clearing fit, trapezoid
    integral, models = ti.integrate_voxels(times, values)
    assert integral[0] == pytest.approx(2.0 / decay, rel=1e-5) and models.tolist() == [1, 2, 0]
    expected = ti.integrate_segment(times, values[:, 1], model="trapezoid").integral
    assert integral[1] == pytest.approx(expected, rel=1e-6) and integral[2] == 0.0


def test_three_points_too_few_for_aicc_take_the_mono_exponential():
    decay = math.log(2) / 60.0
    times = np.array([24.0, 96.0, 168.0])
    result = ti.integrate_segment(times, 0.5 * np.exp(-decay * times))
    assert result.model == "mono" and result.integral == pytest.approx(0.5 / decay, rel=0.005)


def test_an_uptake_phase_at_four_time_points_takes_the_bi_exponential():
    """With 4 points AICc cannot rank three parameters; a series that rises first is still not mono-exponential."""
    decay = ti.physical_decay_per_h()
    k1, k2 = math.log(2) / 100.0, math.log(2) / 4.0
    times = [4.0, 24.0, 96.0, 168.0]
    values = [2.0 * (math.exp(-k1 * t) - math.exp(-k2 * t)) for t in times]
    result = ti.integrate_segment(times, values)
    assert result.model == "bi" and result.integral == pytest.approx(2.0 * (1 / k1 - 1 / k2), rel=0.02)
    assert ti.mono_exponential(times, values, decay).integral > 1.05 * result.integral
    falling = ti.integrate_segment(times, [math.exp(-k1 * t) for t in times])
    assert falling.model == "mono"
