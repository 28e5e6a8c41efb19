"""Tests of DosimetryCore.physics.tissue: Li et al. density calibration, NIST attenuation of water, materials."""

import numpy as np
import pytest
import torch

from DosimetryCore.physics import tissue
from DosimetryCore.physics.tissue import (
    HU_MATERIALS,
    MATERIALS,
    density_g_per_cm3_from_hu,
    mass_attenuation_cm2_per_g,
    mass_attenuation_table_cm2_per_g,
    material_index_from_hu,
    mu_per_cm_from_hu,
)

# NIST SRD 126 (Hubbell & Seltzer) Table 4, "Water, Liquid": mu/rho in cm^2/g at 100, 150, 200, 300 keV.
NIST_WATER_MEV = np.array([0.100, 0.150, 0.200, 0.300])
NIST_WATER_CM2_PER_G = np.array([0.1707, 0.1505, 0.1370, 0.1186])


def nist_water_mu_per_cm(energy_MeV):
    """Log-log interpolation of the NIST table, as NIST recommends between its energies."""
    return float(np.exp(np.interp(np.log(energy_MeV), np.log(NIST_WATER_MEV), np.log(NIST_WATER_CM2_PER_G))))


# --------------------------------------------------------------------------------------------
# density


@pytest.mark.parametrize(
    ("hu", "density"),
    [
        (-900.0, 0.00108 * -900 + 1.02351),  # 0.05151
        (-500.0, 0.48351),
        (-100.0, 0.91551),
        (0.0, 1.02351),
        (1.0, 1.03176),
        (100.0, 1.10007),
        (1000.0, 1.72107),
    ],
)
def test_density_hand_computed(hu, density):
    assert float(density_g_per_cm3_from_hu(hu)) == pytest.approx(density, abs=1e-9)


def test_density_clipped_at_air():
    np.testing.assert_allclose(density_g_per_cm3_from_hu(np.array([-3000.0, -1024.0, -1000.0, -950.0])), 1.205e-3)
    assert float(density_g_per_cm3_from_hu(-940.0)) > 1.205e-3  # the calibration line crosses air at -946.6 HU


def test_density_step_at_zero_is_the_published_one():
    # Li et al. eq. 1 is not continuous at 0 HU: the upper line starts 0.00756 g/cm^3 higher.
    below, above = density_g_per_cm3_from_hu(np.array([0.0, np.nextafter(0.0, 1.0)]))
    assert below == pytest.approx(1.02351) and above == pytest.approx(1.03107)
    assert above - below == pytest.approx(0.00756, abs=1e-9)
    near = density_g_per_cm3_from_hu(np.array([-1e-3, 0.0]))
    assert near[1] - near[0] == pytest.approx(0.00108e-3, abs=1e-12)  # continuous from the left


def test_density_monotone_and_cortical_bone_point():
    density = density_g_per_cm3_from_hu(np.arange(-1200.0, 3000.0, 0.5))
    assert np.all(np.diff(density) >= 0)
    assert float(density_g_per_cm3_from_hu(tissue.CORTICAL_BONE_HU)) == pytest.approx(1.92)
    assert tissue.CORTICAL_BONE_HU == pytest.approx(1288.3, abs=0.1)


def test_density_numpy_and_torch_agree_and_keep_shape_and_dtype():
    hu = np.random.default_rng(0).uniform(-1100, 2500, size=(3, 4, 5)).astype(np.float32)
    from_numpy = density_g_per_cm3_from_hu(hu)
    from_torch = density_g_per_cm3_from_hu(torch.from_numpy(hu))
    assert isinstance(from_torch, torch.Tensor) and from_torch.dtype == torch.float32 and from_torch.shape == (3, 4, 5)
    assert from_numpy.dtype == np.float32 and from_numpy.shape == (3, 4, 5)
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, rtol=1e-6)
    integers = density_g_per_cm3_from_hu(np.array([-100, 100], dtype=np.int16))
    assert integers.dtype == np.float64
    np.testing.assert_allclose(integers, [0.91551, 1.10007])


# --------------------------------------------------------------------------------------------
# attenuation


@pytest.mark.parametrize("energy_MeV", [0.11295, 0.208366])  # 177Lu 113 keV and 208 keV lines
def test_mu_water_matches_nist(energy_MeV):
    nist = nist_water_mu_per_cm(energy_MeV)  # 0.1644 and 0.1350 1/cm
    assert float(mu_per_cm_from_hu(0.0, energy_MeV)) == pytest.approx(nist, rel=0.02)
    assert float(mass_attenuation_cm2_per_g("water", energy_MeV)) == pytest.approx(nist, rel=0.005)


def test_mu_water_values_quoted_in_the_issue():
    assert float(mu_per_cm_from_hu(0.0, 0.208366)) == pytest.approx(0.135, abs=0.001)
    assert float(mu_per_cm_from_hu(0.0, 0.11295)) == pytest.approx(0.164, abs=0.001)


def test_water_mass_attenuation_at_nist_energies():
    np.testing.assert_allclose(mass_attenuation_cm2_per_g("water", NIST_WATER_MEV), NIST_WATER_CM2_PER_G, rtol=2e-3)


def test_mu_bilinear_anchors():
    energy = 0.208366
    air, water, bone = (
        MATERIALS[m].density_g_per_cm3 * mass_attenuation_cm2_per_g(m, energy) for m in ("air", "water", "bone")
    )
    mu = mu_per_cm_from_hu(np.array([-2000.0, -1000.0, -500.0, 0.0, tissue.CORTICAL_BONE_HU]), energy)
    np.testing.assert_allclose(mu, [air, air, 0.5 * (air + water), water, bone], rtol=1e-12)
    assert float(mu_per_cm_from_hu(1000.0, energy, bone_hu=1000.0)) == pytest.approx(bone)


def test_mu_monotone_in_hu_and_continuous_at_water():
    hu = np.arange(-1000.0, 3000.0, 0.5)
    for energy in (0.05, 0.11295, 0.208366, 0.4):
        mu = mu_per_cm_from_hu(hu, energy)
        assert np.all(np.diff(mu) > 0)
        assert float(mu_per_cm_from_hu(1e-6, energy)) == pytest.approx(float(mu_per_cm_from_hu(0.0, energy)), rel=1e-6)


def test_mu_numpy_and_torch_agree():
    hu = np.linspace(-1100, 2000, 24).reshape(2, 3, 4)
    from_torch = mu_per_cm_from_hu(torch.tensor(hu), 0.11295)
    assert isinstance(from_torch, torch.Tensor) and from_torch.shape == (2, 3, 4)
    np.testing.assert_allclose(from_torch.numpy(), mu_per_cm_from_hu(hu, 0.11295), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# materials


def test_compositions_sum_to_one_and_cite_a_source():
    for material in MATERIALS.values():
        assert sum(fraction for _, fraction in material.mass_fractions) == pytest.approx(1.0, abs=1e-6)
        assert "NIST" in material.source


def test_material_index_boundaries():
    hu = np.array([-1100, -951, -950, -121, -120, -23, -22, 0, 119, 120, 3000])
    expected = [
        "air",
        "air",
        "lung",
        "lung",
        "adipose",
        "adipose",
        "soft_tissue",
        "soft_tissue",
        "soft_tissue",
        "bone",
        "bone",
    ]
    index = material_index_from_hu(hu)
    assert [HU_MATERIALS[i] for i in index] == expected
    from_torch = material_index_from_hu(torch.tensor(hu, dtype=torch.float32))
    assert from_torch.dtype == torch.int64
    np.testing.assert_array_equal(from_torch.numpy(), index)


def test_mass_attenuation_table():
    energies = np.geomspace(0.03, 0.8, 12)
    table = mass_attenuation_table_cm2_per_g(energies)
    assert table.shape == (len(HU_MATERIALS), 12)
    assert np.all(table > 0) and np.all(np.diff(table, axis=1) < 0)  # no absorption edges above 30 keV
    bone, soft = HU_MATERIALS.index("bone"), HU_MATERIALS.index("soft_tissue")
    assert table[bone, 0] > 1.5 * table[soft, 0]  # photoelectric effect of Ca and P at 30 keV
    parts = sum(mass_attenuation_cm2_per_g("bone", energies, kind) for kind in ("photo", "incoh", "coh"))
    np.testing.assert_allclose(parts, table[bone], rtol=1e-9)
    assert mass_attenuation_cm2_per_g("lung", np.ones((2, 3)) * 0.1).shape == (2, 3)


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "call",
    [
        lambda: density_g_per_cm3_from_hu(np.array([0.0, np.nan])),
        lambda: density_g_per_cm3_from_hu(torch.tensor([np.inf])),
        lambda: mu_per_cm_from_hu(np.array([np.nan]), 0.2),
        lambda: material_index_from_hu(np.array([np.nan])),
    ],
)
def test_nan_hu_raises(call):
    with pytest.raises(ValueError, match="hu: contains NaN or infinite"):
        call()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: density_g_per_cm3_from_hu("soft tissue"), "hu: expected numeric"),
        (lambda: mu_per_cm_from_hu(0.0, 1.2), "energy_MeV: photon energies must lie in"),
        (lambda: mu_per_cm_from_hu(0.0, 0.0), "energy_MeV: photon energies must lie in"),
        (lambda: mu_per_cm_from_hu(0.0, float("nan")), "energy_MeV"),
        (lambda: mu_per_cm_from_hu(0.0, [0.1, 0.2]), "expected one photon energy"),
        (lambda: mu_per_cm_from_hu(0.0, 0.2, bone_hu=-5.0), "bone_hu"),
        (lambda: mass_attenuation_cm2_per_g("steel", 0.1), "material: 'steel' is not known"),
        (lambda: mass_attenuation_cm2_per_g("water", 0.1, kind="pair"), "kind: 'pair'"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()
