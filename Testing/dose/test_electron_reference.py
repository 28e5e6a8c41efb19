"""The electron transport of DosimetryCore.dose.electrons against published values no one here computed.

Sources:
- Monoenergetic point kernels in water: the scaled dose point kernels of ETRAN (M. J. Berger, "Improved point
  kernels for electron and beta-ray dosimetry", NBSIR 73-107, 1973) and EGSnrc, both distributed as reference
  data with Geant4's TestEm12 example (``berger/`` folder): X50 and X90 (radii holding 50 % and 90 % of the
  energy) 0.076 and 0.114 mm at 100 keV, 0.90 and 1.38 mm at 500 keV.
- 177Lu: the same kernels weighted over the ICRP-107 beta spectrum plus conversion and Auger electrons give
  X50 about 0.17 mm and X90 about 0.59 mm in water.
- Absorbed fractions of 177Lu electrons in unit-density-class soft-tissue spheres (1.03 g/cm^3) of radius 1, 2
  and 3 mm: 0.826, 0.916, 0.945, from the sphere S-values shipped by PyTheranostics
  (``pytheranostics/data/s-values/spheres.json``, S x mass / 0.1479 MeV electron energy per decay).
- Voxel S-values at 4.8 mm in soft tissue: N. Lanconelli et al., "A free database of radionuclide voxel S
  values for the dosimetry of nonuniform activity distributions", Phys. Med. Biol. 57 (2012) 517, scaled to
  the ICRP-107 electron energy per decay by 0.1479 / 0.1389 MeV: source voxel about 0.192 mGy/(MBq s), face
  neighbour about 2.45e-3 mGy/(MBq s).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from DosimetryCore.dose import electrons, kernels

MM_PER_G_PER_CM2 = 10.0  # 1 g/cm^2 of water (1 g/cm^3) is 10 mm
SPHERE_DENSITY_G_PER_CM3 = 1.03  # the spheres' mass / volume in spheres.json


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One torch thread: the element-wise transport steps run faster so on the shared 2-core test machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(("energy_MeV", "x50_mm", "x90_mm"), [(0.1, 0.076, 0.114), (0.5, 0.90, 1.38)])
def test_monoenergetic_kernels_match_etran_and_egsnrc(energy_MeV, x50_mm, x90_mm):
    kernel = electrons.monoenergetic_point_kernel(energy_MeV, electrons=50_000, seed=11)
    assert kernel.radius_g_per_cm2(0.5) * MM_PER_G_PER_CM2 == pytest.approx(x50_mm, rel=0.05)
    assert kernel.radius_g_per_cm2(0.9) * MM_PER_G_PER_CM2 == pytest.approx(x90_mm, rel=0.05)


def test_monoenergetic_kernel_does_not_depend_on_the_step_length():
    coarse = electrons.monoenergetic_point_kernel(0.5, electrons=40_000, seed=12, step_energy_loss_fraction=0.08)
    fine = electrons.monoenergetic_point_kernel(0.5, electrons=40_000, seed=12, step_energy_loss_fraction=0.02)
    for fraction in (0.5, 0.9):
        assert coarse.radius_g_per_cm2(fraction) == pytest.approx(fine.radius_g_per_cm2(fraction), rel=0.02)


def test_lu177_kernel_matches_the_spectrum_weighted_published_kernels():
    shipped = electrons.beta_point_kernel("Lu-177")
    assert shipped.radius_g_per_cm2(0.5) * MM_PER_G_PER_CM2 == pytest.approx(0.17, rel=0.05)
    assert shipped.radius_g_per_cm2(0.9) * MM_PER_G_PER_CM2 == pytest.approx(0.59, rel=0.05)


def sphere_absorbed_fraction(kernel: electrons.RadialKernel, radius_mm: float, density: float) -> float:
    """Fraction of the electron energy emitted uniformly in a sphere that stays in it: the point kernel times
    the chance 1 - 3x/4 + x^3/16 (x = r / radius < 2) that a point at distance r from a uniform point of the
    sphere, in a random direction, lies inside it."""
    centres_mm = 0.5 * (kernel.edges_g_per_cm2[1:] + kernel.edges_g_per_cm2[:-1]) / density * MM_PER_G_PER_CM2
    x = centres_mm / radius_mm
    inside = np.where(x < 2.0, 1.0 - 0.75 * x + x**3 / 16.0, 0.0)
    return float(np.sum(kernel.fractions * inside))


@pytest.mark.parametrize(("radius_mm", "published"), [(1.0, 0.826), (2.0, 0.916), (3.0, 0.945)])
def test_sphere_absorbed_fractions_match_published_sphere_s_values(radius_mm, published):
    shipped = electrons.beta_point_kernel("Lu-177")
    assert sphere_absorbed_fraction(shipped, radius_mm, SPHERE_DENSITY_G_PER_CM3) == pytest.approx(published, rel=0.02)


def test_sphere_geometry_factor_is_right_for_a_monoenergetic_range():
    """A sphere much larger than the range keeps nearly everything; one much smaller keeps almost nothing."""
    kernel = electrons.monoenergetic_point_kernel(0.1, electrons=20_000, seed=13)
    assert sphere_absorbed_fraction(kernel, 50.0, 1.0) > 0.997
    assert sphere_absorbed_fraction(kernel, 0.001, 1.0) < 0.01


def test_shipped_4p8_mm_kernel_matches_lanconelli():
    kernel = kernels.voxel_kernel((4.8, 4.8, 4.8))
    total = kernel.total()
    c = tuple(n // 2 for n in total.shape)
    assert total[c] == pytest.approx(0.192, rel=0.03)
    face = [total[c[0] + 1, c[1], c[2]], total[c[0], c[1] + 1, c[2]], total[c[0], c[1], c[2] + 1]]
    np.testing.assert_allclose(face, 2.45e-3, rtol=0.15)
