"""Tests of DosimetryCore.core.constants: exact SI values and cross-checks between CODATA 2018 constants."""

import math

import pytest

from DosimetryCore.core import constants as c


def test_exact_si_values():
    assert c.J_PER_MEV == pytest.approx(1.602176634e-13, rel=1e-15)
    assert c.AVOGADRO_PER_MOL == 6.02214076e23
    assert c.SECONDS_PER_DAY == 24 * c.SECONDS_PER_HOUR == 24 * 60 * c.SECONDS_PER_MINUTE
    assert c.SECONDS_PER_YEAR == pytest.approx(365.25 * 86400.0)
    assert c.BQ_PER_MCI == pytest.approx(1e-3 * c.BQ_PER_CI)
    assert c.LN2 == pytest.approx(0.6931471805599453)


def test_electron_rest_energy_matches_codata_value_in_joule():
    # CODATA 2018: m_e c^2 = 8.1871057769e-14 J
    assert c.ELECTRON_REST_ENERGY_MEV * c.J_PER_MEV == pytest.approx(8.1871057769e-14, rel=1e-9)


def test_classical_electron_radius_from_its_definition():
    # r_e = e^2 / (4 pi eps0 m_e c^2); CODATA 2018 eps0 = 8.8541878128e-12 F/m; metres -> cm
    epsilon0 = 8.8541878128e-12
    r_e_cm = 100.0 * 1.602176634e-19**2 / (4 * math.pi * epsilon0 * c.ELECTRON_REST_ENERGY_MEV * c.J_PER_MEV)
    assert c.CLASSICAL_ELECTRON_RADIUS_CM == pytest.approx(r_e_cm, rel=1e-9)
