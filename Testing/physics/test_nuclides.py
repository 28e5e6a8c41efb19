"""Tests of DosimetryCore.physics.nuclides against published ICRP-107 values for 177Lu (and a few other nuclides)."""

import dataclasses
import importlib.metadata
import math

import numpy as np
import pytest

from DosimetryCore.core.constants import SECONDS_PER_DAY, SECONDS_PER_HOUR
from DosimetryCore.physics.nuclides import ENERGY_KINDS, available_nuclides, canonical_nuclide_name, load_nuclide


@pytest.fixture(scope="module")
def lu177():
    return load_nuclide("Lu-177")


@pytest.mark.parametrize("spelling", ["Lu-177", "Lu177", "177Lu", "lu-177", " LU 177 ", "177-Lu"])
def test_spellings_give_the_same_cached_nuclide(spelling, lu177):
    assert canonical_nuclide_name(spelling) == "Lu-177"
    assert load_nuclide(spelling) is lu177


def test_metastable_state_is_a_different_nuclide():
    assert canonical_nuclide_name("177mLu") == "Lu-177m"
    assert load_nuclide("Lu177m").half_life_s == pytest.approx(160.4 * SECONDS_PER_DAY)


def test_half_life_and_decay_constant(lu177):
    assert lu177.name == "Lu-177"
    assert lu177.half_life_s == pytest.approx(6.647 * SECONDS_PER_DAY)
    assert lu177.decay_constant_per_s == pytest.approx(math.log(2) / (6.647 * 86400.0))


def test_main_gamma_lines(lu177):
    energies, yields = lu177.photon_lines(min_yield=0.05, min_energy_MeV=0.01)
    np.testing.assert_allclose(energies, [0.11295, 0.208366], atol=1e-4)  # 113.0 keV, 208.4 keV
    np.testing.assert_allclose(yields, [0.064, 0.110], atol=5e-4)  # 6.4 %, 11.0 %


def test_photon_lines_filter_and_order(lu177):
    energies, yields = lu177.photon_lines()
    assert len(energies) == len(lu177.photon_energies_MeV) == 66  # 6 gamma + 60 X-ray lines
    assert np.all(np.diff(energies) >= 0)
    energies, yields = lu177.photon_lines(min_yield=0.01)
    assert np.all(yields >= 0.01)
    assert 1.94297e-05 in energies  # ICRP-107 lists a 19 eV X-ray with 1.28 per decay
    kalpha = lu177.photon_is_xray & (lu177.photon_energies_MeV > 0.05) & (lu177.photon_energies_MeV < 0.06)
    assert lu177.photon_yields[kalpha].sum() == pytest.approx(0.0449, abs=5e-4)  # Hf K-alpha 54.6 / 55.8 keV


def test_beta_branches_and_mean_energy(lu177):
    assert lu177.beta_yields.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.max(lu177.beta_yields) == pytest.approx(0.786, abs=1e-3)  # ground-state branch, mean 149 keV
    # ICRP-107: 177Lu mean beta energy 0.1333 MeV per decay
    assert lu177.mean_energy_per_decay_MeV("beta") == pytest.approx(0.1333, abs=2e-4)


def test_beta_spectrum_is_normalised_and_consistent(lu177):
    edges, probabilities = lu177.beta_spectrum_edges_MeV, lu177.beta_spectrum_probabilities
    assert edges.shape == (probabilities.size + 1,)
    assert np.all(np.diff(edges) > 0) and np.all(np.diff(edges) <= 0.001 + 1e-12)
    assert edges[0] == 0.0 and edges[-1] == pytest.approx(0.4978)  # 177Lu endpoint 498 keV
    assert np.all(probabilities >= 0) and probabilities.sum() == pytest.approx(1.0)
    assert lu177.beta_spectrum_mean_energy_MeV() == pytest.approx(lu177.mean_energy_per_decay_MeV("beta"), rel=1e-3)


def test_energy_per_decay_sums(lu177):
    energy = {kind: lu177.mean_energy_per_decay_MeV(kind) for kind in ENERGY_KINDS}
    assert energy["electron"] == pytest.approx(energy["conversion_electron"] + energy["auger"])
    assert energy["photon"] == pytest.approx(energy["gamma"] + energy["xray"])
    assert energy["total"] == pytest.approx(energy["beta"] + energy["electron"] + energy["photon"])
    main_lines = 0.208366 * 0.110 + 0.11295 * 0.064
    assert main_lines < energy["gamma"] < main_lines + 0.002  # minor gamma lines add 1.4 keV
    assert energy["photon"] == pytest.approx(0.0351, abs=5e-4)
    assert energy["conversion_electron"] == pytest.approx(0.0135, abs=5e-4)
    assert energy["auger"] == pytest.approx(0.0011, abs=2e-4)
    assert energy["total"] == pytest.approx(0.1830, abs=1e-3)


def test_electron_lines(lu177):
    auger = lu177.electron_is_auger
    assert auger.sum() == 15 and (~auger).sum() == 36
    assert np.all(np.diff(lu177.electron_energies_MeV) >= 0)
    ce_energies, ce_yields = lu177.electron_energies_MeV[~auger], lu177.electron_yields[~auger]
    assert ce_energies[np.argmax(ce_yields)] == pytest.approx(0.0475, abs=1e-3)  # K-conversion of 113 keV


def test_immutable_and_provenance(lu177):
    with pytest.raises(dataclasses.FrozenInstanceError):
        lu177.half_life_s = 1.0
    with pytest.raises(ValueError):
        lu177.photon_yields[0] = 0.0
    assert "ICRP Publication 107" in lu177.source
    assert importlib.metadata.version("icrp107-database") in lu177.source


def test_other_beta_emitters():
    assert load_nuclide("Y-90").half_life_s == pytest.approx(64.1 * SECONDS_PER_HOUR)
    iodine = load_nuclide("131I")
    energies, yields = iodine.photon_lines(min_yield=0.5, min_energy_MeV=0.01)
    np.testing.assert_allclose(energies, [0.364489])  # 364.5 keV, 81.7 %
    np.testing.assert_allclose(yields, [0.817])
    assert "Lu-177" in available_nuclides() and len(available_nuclides()) == 1252


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Xx-999", "not in the ICRP-107 tables"),
        ("Lu-999", "not in the ICRP-107 tables"),
        ("lutetium", "not a nuclide name"),
        ("", "not a nuclide name"),
        (177, "expected a name"),
        ("Ga-68", "beta\\+"),
        ("Ac-225", "alpha"),
    ],
)
def test_bad_nuclides_raise(name, message):
    with pytest.raises(ValueError, match=message):
        load_nuclide(name)


def test_unknown_energy_kind_raises(lu177):
    with pytest.raises(ValueError, match="kind: 'neutrino'"):
        lu177.mean_energy_per_decay_MeV("neutrino")
