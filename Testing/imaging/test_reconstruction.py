"""Analytic tests of SPECT simulation and OSEM reconstruction (DosimetryCore.imaging.reconstruction).

Water attenuation: mu = 0.1355 /cm at 208 keV (177Lu main photopeak), NIST XCOM (water, total with
coherent scattering, log-log interpolated between 200 and 300 keV).

Geometry as in seed 003 at half the matrix: 64^3 voxels of 4.8 mm, 60 views over 360 degrees, MELP
collimator; a uniform 20 cm diameter water cylinder along z.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from DosimetryCore.core.progress import Cancelled
from DosimetryCore.imaging.collimators import collimator_response
from DosimetryCore.imaging.projection import SpectProjector
from DosimetryCore.imaging.reconstruction import osem, simulate_spect_projections

MU_WATER_208KEV_PER_CM = 0.1355
SIZE, SPACING_MM, VIEWS = 64, 4.8, 60
ACQUISITION = {"sensitivity_cps_per_MBq": 10.0, "time_per_view_s": 30.0}
CONCENTRATION_BQ_PER_ML = 1000.0


def _radial_mm() -> tuple[torch.Tensor, torch.Tensor]:
    """In-plane distance from the rotation axis and the z offset from the centre (mm), shape (z, y, x)."""
    offsets = (torch.arange(SIZE, dtype=torch.float32) - (SIZE - 1) / 2) * SPACING_MM
    zz, yy, xx = torch.meshgrid(offsets, offsets, offsets, indexing="ij")
    return torch.sqrt(xx**2 + yy**2), zz


@pytest.fixture(scope="module")
def cylinder():
    radial, _ = _radial_mm()
    inside = radial <= 100.0
    projector = SpectProjector(
        (SIZE,) * 3,
        (SPACING_MM,) * 3,
        np.arange(VIEWS) * 360.0 / VIEWS,
        radius_mm=200.0,
        mu_per_cm=torch.where(inside, MU_WATER_208KEV_PER_CM, 0.0),
        response=collimator_response("SIEMENS-MELP"),
    )
    return projector, inside


def test_osem_recovers_uniform_cylinder_concentration(cylinder):
    projector, inside = cylinder
    activity = torch.where(inside, CONCENTRATION_BQ_PER_ML, 0.0)
    projections = simulate_spect_projections(activity, projector, **ACQUISITION)
    image = osem(projections, projector, iterations=8, subsets=6, **ACQUISITION)
    radial, z = _radial_mm()
    central = (radial <= 50.0) & (z.abs() <= 50.0)
    assert float(image[central].mean()) == pytest.approx(CONCENTRATION_BQ_PER_ML, rel=0.05)
    assert float((image[central] / CONCENTRATION_BQ_PER_ML - 1).abs().max()) < 0.1


def test_resolution_recovery_raises_hot_sphere_recovery(cylinder):
    projector, inside = cylinder
    radial, z = _radial_mm()
    sphere = radial**2 + z**2 <= 10.0**2  # 2 cm diameter at the centre
    activity = torch.where(inside, 100.0, 0.0)
    activity[sphere] = CONCENTRATION_BQ_PER_ML
    projections = simulate_spect_projections(activity, projector, **ACQUISITION)
    recovery = {}
    for name, model in (("RR", projector), ("noRR", projector.with_response(None))):
        image = osem(projections, model, iterations=8, subsets=6, **ACQUISITION)
        recovery[name] = float(image[sphere].mean()) / CONCENTRATION_BQ_PER_ML
    assert recovery["RR"] > 1.1 * recovery["noRR"]


def _small_projector() -> SpectProjector:
    return SpectProjector((16, 24, 24), (4.8,) * 3, np.arange(12) * 30.0, 150.0, torch.full((16, 24, 24), 0.1))


def test_scatter_estimate_is_added_to_the_model():
    projector = _small_projector()
    activity = torch.zeros(16, 24, 24)
    activity[4:12, 8:16, 8:16] = CONCENTRATION_BQ_PER_ML
    primary = simulate_spect_projections(activity, projector, **ACQUISITION)
    scatter = torch.full_like(primary, float(primary.mean()))
    centre = (slice(6, 10), slice(10, 14), slice(10, 14))
    corrected = osem(primary + scatter, projector, iterations=6, subsets=4, scatter=scatter, **ACQUISITION)
    uncorrected = osem(primary + scatter, projector, iterations=6, subsets=4, **ACQUISITION)
    assert float(corrected[centre].mean()) == pytest.approx(CONCENTRATION_BQ_PER_ML, rel=0.02)
    assert float(uncorrected[centre].mean()) > 1.05 * CONCENTRATION_BQ_PER_ML


def test_simulated_counts_units_and_seeded_noise():
    # 1 MBq in one voxel at the centre of an air-filled field: 10 cps/MBq * 30 s = 300 counts per view.
    projector = SpectProjector((16, 24, 24), (4.8,) * 3, np.arange(12) * 30.0, 150.0)
    activity = torch.zeros(16, 24, 24)
    activity[8, 12, 12] = 1e6 / (4.8**3 / 1000.0)
    expected = simulate_spect_projections(activity, projector, **ACQUISITION)
    torch.testing.assert_close(expected.sum(dim=(1, 2)), torch.full((12,), 300.0))
    noisy = simulate_spect_projections(activity, projector, noise=True, seed=5, **ACQUISITION)
    assert torch.equal(noisy, simulate_spect_projections(activity, projector, noise=True, seed=5, **ACQUISITION))
    assert abs(float(noisy.sum()) - 3600.0) < 5 * math.sqrt(3600.0)


def test_progress_reports_every_subset_and_can_cancel():
    projector = _small_projector()
    projections = torch.ones(projector.projection_shape)
    fractions = []
    osem(projections, projector, iterations=2, subsets=3, progress=lambda f, m: fractions.append(f), **ACQUISITION)
    assert fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0)
    assert len(fractions) == 1 + 2 * 3 and fractions == sorted(fractions)

    def cancel(fraction, message):
        if fraction > 0.5:
            raise Cancelled

    with pytest.raises(Cancelled):
        osem(projections, projector, iterations=2, subsets=3, progress=cancel, **ACQUISITION)


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"projections": torch.ones(12, 16)}, "projections"),
        ({"projections": torch.ones(12, 16, 23)}, "projections"),
        ({"projections": -torch.ones(12, 16, 24)}, "projections"),
        ({"projections": torch.full((12, 16, 24), math.nan)}, "projections"),
        ({"scatter": torch.ones(11, 16, 24)}, "scatter"),
        ({"subsets": 13}, "subsets"),
        ({"iterations": 0}, "iterations"),
        ({"sensitivity_cps_per_MBq": 0.0}, "sensitivity_cps_per_MBq"),
        ({"time_per_view_s": -30.0}, "time_per_view_s"),
    ],
)
def test_osem_bad_input_raises_value_error_naming_it(arguments, name):
    keywords = {"projections": torch.ones(12, 16, 24), **ACQUISITION, **arguments}
    with pytest.raises(ValueError, match=name):
        osem(keywords.pop("projections"), _small_projector(), **keywords)


@pytest.mark.parametrize(
    ("activity", "name"),
    [
        (torch.ones(16, 24), "activity_Bq_per_mL"),
        (torch.ones(16, 24, 23), "activity_Bq_per_mL"),
        (-torch.ones(16, 24, 24), "activity_Bq_per_mL"),
        (torch.full((16, 24, 24), math.nan), "activity_Bq_per_mL"),
    ],
)
def test_simulation_bad_input_raises_value_error_naming_it(activity, name):
    with pytest.raises(ValueError, match=name):
        simulate_spect_projections(activity, _small_projector(), **ACQUISITION)
