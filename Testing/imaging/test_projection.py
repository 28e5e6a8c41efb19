"""Analytic tests of the SPECT and planar projectors (DosimetryCore.imaging.projection).

Water attenuation: mu = 0.1355 /cm at 208 keV (177Lu main photopeak), NIST XCOM (water, total with
coherent scattering, log-log interpolated between 200 and 300 keV).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from DosimetryCore.imaging.collimators import COLLIMATORS, collimator_response, lead_mu_per_mm
from DosimetryCore.imaging.projection import PlanarProjector, SpectProjector, counts_per_Bq_per_mL, simulate_planar

MU_WATER_208KEV_PER_CM = 0.1355


def _half_maximum_width(profile: np.ndarray, spacing_mm: float) -> float:
    """FWHM (mm) of a single-peaked sampled profile, by linear interpolation of the half-maximum crossings."""
    peak = int(np.argmax(profile))
    half = profile[peak] / 2.0
    left = peak - int(np.argmax(profile[peak::-1] < half))
    right = peak + int(np.argmax(profile[peak:] < half))
    left_crossing = left + (half - profile[left]) / (profile[left + 1] - profile[left])
    right_crossing = right - 1 + (profile[right - 1] - half) / (profile[right - 1] - profile[right])
    return (right_crossing - left_crossing) * spacing_mm


def _relative_dot_error(forward, back, shape_in, shape_out) -> float:
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(shape_in, generator=generator, dtype=torch.float64)
    y = torch.rand(shape_out, generator=generator, dtype=torch.float64)
    lhs = float((forward(x) * y).sum())
    rhs = float((x * back(y)).sum())
    return abs(lhs - rhs) / abs(lhs)


def test_point_source_in_water_slab_anterior_posterior():
    # 4 mm voxels; water slab between y = 40 mm and y = 200 mm (indices 10..49, 160 mm thick).
    shape, spacing = (21, 60, 21), (4.0, 4.0, 4.0)
    mu = torch.zeros(shape)
    mu[:, 10:50, :] = MU_WATER_208KEV_PER_CM
    response = collimator_response("SIEMENS-MELP")
    scale = counts_per_Bq_per_mL(spacing, sensitivity_cps_per_MBq=10.0, time_s=600.0)
    geometric_means = []
    for k in (14, 25, 31, 45):
        activity = torch.zeros(shape)
        activity[10, k, 10] = 1e6
        counts = simulate_planar(
            activity,
            spacing,
            sensitivity_cps_per_MBq=10.0,
            acquisition_time_s=600.0,
            distance_mm=250.0,
            mu_per_cm=mu,
            response=response,
            noise=False,
        )
        anterior, posterior = float(counts[0].sum()), float(counts[1].sum())
        depth_anterior_cm = (k - 10 + 0.5) * 0.4
        depth_posterior_cm = (49 - k + 0.5) * 0.4
        expected_ratio = math.exp(-MU_WATER_208KEV_PER_CM * (depth_anterior_cm - depth_posterior_cm))
        assert anterior / posterior == pytest.approx(expected_ratio, rel=0.01)
        geometric_means.append(math.sqrt(anterior * posterior))
    expected_mean = 1e6 * scale * math.exp(-MU_WATER_208KEV_PER_CM * 16.0 / 2.0)
    for mean in geometric_means:
        assert mean == pytest.approx(geometric_means[0], rel=0.02)
        assert mean == pytest.approx(expected_mean, rel=0.02)


@pytest.mark.parametrize("collimator", sorted(COLLIMATORS))
def test_point_source_fwhm_follows_collimator_model(collimator):
    # 2 mm voxels, no attenuation; plane k sits at t = (63.5 - k) * 2 mm, so d = 151 mm - t.
    shape, spacing, radius = (41, 128, 41), (2.0, 2.0, 2.0), 151.0
    response = collimator_response(collimator)
    projector = PlanarProjector(shape, spacing, radius, response=response)
    for k, distance in ((13, 50.0), (38, 100.0), (88, 200.0)):
        activity = torch.zeros(shape)
        activity[20, k, 20] = 1.0
        anterior = projector.forward(activity, views=[0])[0].numpy()
        expected = response.fwhm_mm(distance)
        assert _half_maximum_width(anterior[20, :], 2.0) == pytest.approx(expected, rel=0.05)
        assert _half_maximum_width(anterior[:, 20], 2.0) == pytest.approx(expected, rel=0.05)
        assert anterior.sum() == pytest.approx(1.0, rel=1e-4)


def test_collimator_response_formula():
    # Cherry, Sorenson & Phelps: R_g = D (L_eff + d) / L_eff, L_eff = L - 2 / mu_Pb; R = sqrt(R_g^2 + R_i^2).
    mu_lead = lead_mu_per_mm(208.4)
    assert mu_lead == pytest.approx(1.03, rel=0.02)  # NIST XCOM: 0.91 cm^2/g * 11.35 g/cm^3 at 208 keV
    melp = COLLIMATORS["SIEMENS-MELP"]
    effective_length = melp.hole_length_mm - 2.0 / mu_lead
    geometric = melp.hole_diameter_mm * (effective_length + 100.0) / effective_length
    response = collimator_response(melp, 208.4, intrinsic_fwhm_mm=3.8)
    assert response.fwhm_mm(100.0) == pytest.approx(math.hypot(geometric, 3.8), rel=1e-9)
    assert response.sigma_mm(0.0) == pytest.approx(math.hypot(melp.hole_diameter_mm, 3.8) / 2.3548, rel=1e-4)
    with pytest.raises(ValueError, match="collimator"):
        collimator_response("LEHR")
    with pytest.raises(ValueError, match="energy_keV"):
        lead_mu_per_mm(50.0)


def test_orientation_conventions():
    shape, spacing = (5, 33, 33), (4.0, 4.0, 4.0)
    zz, yy, xx = torch.meshgrid(*(torch.arange(n) - (n - 1) / 2 for n in shape), indexing="ij")
    mu = torch.where(xx**2 + yy**2 <= 14**2, MU_WATER_208KEV_PER_CM, 0.0)
    activity = torch.zeros(shape)
    activity[2, 16, 26] = 1.0  # 40 mm toward the patient's left (+x) of the axis
    planar = PlanarProjector(shape, spacing, 200.0, mu).forward(activity)
    assert int(planar[0, 2].argmax()) == 26 and int(planar[1, 2].argmax()) == 26  # posterior mirrored
    spect = SpectProjector(shape, spacing, [0.0, 90.0, 180.0, 270.0], 200.0, mu).forward(activity)
    assert [int(spect[v, 2].argmax()) for v in range(4)] == [26, 16, 6, 16]
    # 90 degrees: camera on the patient's right (far from the source); 270: on the left (near).
    assert float(spect[3].sum()) > 2.0 * float(spect[1].sum())


def test_spect_adjoint_dot_product_float64():
    shape, spacing = (7, 12, 11), (3.0, 4.0, 4.5)
    mu = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.2
    angles = np.arange(9) * 40.0 + 7.0
    projector = SpectProjector(
        shape,
        spacing,
        angles,
        radius_mm=[90.0 + 5 * i for i in range(9)],
        mu_per_cm=mu,
        response=collimator_response("GE-MEGP"),
        dtype=torch.float64,
        cache=False,
    )
    assert _relative_dot_error(projector.forward, projector.back, shape, projector.projection_shape) < 1e-4
    views = [1, 4, 8]
    error = _relative_dot_error(
        lambda x: projector.forward(x, views), lambda y: projector.back(y, views), shape, (3, 7, 11)
    )
    assert error < 1e-4


def test_planar_adjoint_dot_product_float64():
    shape, spacing = (9, 14, 10), (5.0, 4.0, 4.0)
    mu = torch.full(shape, MU_WATER_208KEV_PER_CM, dtype=torch.float64)
    projector = PlanarProjector(shape, spacing, 120.0, mu, collimator_response("SIEMENS-MELP"), dtype=torch.float64)
    assert _relative_dot_error(projector.forward, projector.back, shape, (2, 9, 10)) < 1e-4


def test_planar_counts_units_and_seeded_noise():
    # A point of 1 MBq (no attenuation) seen by a 10 cps/MBq camera for 100 s: 1000 counts per view.
    shape, spacing = (15, 10, 15), (4.0, 4.0, 4.0)
    activity = torch.zeros(shape)
    activity[7, 5, 7] = 1e6 / (4.0**3 / 1000.0)  # Bq/mL in a 0.064 mL voxel
    kwargs = {"sensitivity_cps_per_MBq": 10.0, "acquisition_time_s": 100.0, "distance_mm": 100.0}
    expected = simulate_planar(activity, spacing, noise=False, **kwargs)
    assert expected.shape == (2, 15, 15)
    assert float(expected[0].sum()) == pytest.approx(1000.0, rel=1e-5)
    first = simulate_planar(activity, spacing, seed=7, **kwargs)
    assert torch.equal(first, simulate_planar(activity, spacing, seed=7, **kwargs))
    assert not torch.equal(first, simulate_planar(activity, spacing, seed=8, **kwargs))
    assert torch.equal(first, first.round())


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: SpectProjector((8, 8, 8), (4.0, 0.0, 4.0), [0.0], 100.0), "spacing_mm"),
        (lambda: SpectProjector((8, 8, 8), (4.0, 4.0, 4.0), [0.0], 100.0, torch.zeros(8, 8, 7)), "mu_per_cm"),
        (lambda: SpectProjector((8, 8, 8), (4.0, 4.0, 4.0), [0.0], 100.0, -torch.ones(8, 8, 8)), "mu_per_cm"),
        (lambda: SpectProjector((8, 8, 8), (4.0, 4.0, 4.0), [0.0], -5.0), "radius_mm"),
        (lambda: SpectProjector((8, 8, 8), (4.0, 4.0, 4.0), [0.0], 100.0).forward(torch.ones(8, 8)), "image"),
        (lambda: SpectProjector((8, 8, 8), (4.0, 4.0, 4.0), [0.0], 100.0).back(torch.ones(2, 8, 8)), "projections"),
        (lambda: simulate_planar(torch.ones(8, 8), (4.0, 4.0, 4.0), **_PLANAR), "activity_Bq_per_mL"),
        (lambda: simulate_planar(-torch.ones(4, 4, 4), (4.0, 4.0, 4.0), **_PLANAR), "activity_Bq_per_mL"),
        (lambda: simulate_planar(torch.full((4, 4, 4), math.nan), (4.0, 4.0, 4.0), **_PLANAR), "activity_Bq_per_mL"),
        (lambda: simulate_planar(torch.ones(4, 4, 4), (4.0, -4.0, 4.0), **_PLANAR), "spacing_mm"),
        (
            lambda: simulate_planar(torch.ones(4, 4, 4), (4.0, 4.0, 4.0), **{**_PLANAR, "acquisition_time_s": 0.0}),
            "acquisition_time_s",
        ),
        (
            lambda: simulate_planar(torch.ones(4, 4, 4), (4.0, 4.0, 4.0), mu_per_cm=torch.ones(4, 4, 5), **_PLANAR),
            "mu_per_cm",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_it(call, name):
    with pytest.raises(ValueError, match=name):
        call()


_PLANAR = {"sensitivity_cps_per_MBq": 10.0, "acquisition_time_s": 100.0, "distance_mm": 100.0}
