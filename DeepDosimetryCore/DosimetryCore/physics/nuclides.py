"""Radionuclide decay data (177Lu and other beta-minus emitters) from ICRP Publication 107.

Source: ICRP, 2008. Nuclear Decay Data for Dosimetric Calculations. ICRP Publication 107.
Ann. ICRP 38(3). The tables are read, never typed in, from the ``icrp107-database`` package
(OpenGATE collaboration), which carries the publication's supplemental data files as JSON: per
radiation type a list of ``[energy (MeV), yield (per nuclear transformation)]`` pairs, for beta
emissions the mean energy of each branch, and under ``b-spectra`` the beta spectrum as
``[energy (MeV), number per MeV per nuclear transformation]`` on the publication's energy grid.

The beta spectrum is binned here (1 keV bins, see :func:`_beta_spectrum_bins`); everything else is used as
tabulated. The package version is recorded in :attr:`Nuclide.source` so that outputs can state provenance.
"""

import functools
import importlib.metadata
import re
from dataclasses import dataclass

import numpy as np
from icrp107_database import get_icrp107_spectrum
from icrp107_database.utility import icrp107_source_path
from scipy.interpolate import PchipInterpolator

from DosimetryCore.core.constants import LN2, SECONDS_PER_DAY, SECONDS_PER_HOUR, SECONDS_PER_MINUTE, SECONDS_PER_YEAR

_PACKAGE = "icrp107-database"

# ICRP-107 time units as spelled in the package's JSON files ("m" is minutes; "y" is taken as the Julian year).
_SECONDS_PER_TIME_UNIT = {
    "us": 1.0e-6,
    "ms": 1.0e-3,
    "s": 1.0,
    "m": SECONDS_PER_MINUTE,
    "h": SECONDS_PER_HOUR,
    "d": SECONDS_PER_DAY,
    "y": SECONDS_PER_YEAR,
}

# Emission types this module does not model; a nuclide emitting any of them is refused.
_UNSUPPORTED_EMISSIONS = ("alpha", "alpha recoil", "beta+", "annihilation", "neutron", "fission", "betaD")

# Width of the beta-spectrum bins (MeV); fine enough that sampling uniformly within a bin is unbiased
# to < 0.1 % in mean energy.
BETA_SPECTRUM_BIN_WIDTH_MEV = 0.001

ENERGY_KINDS = ("beta", "conversion_electron", "auger", "electron", "gamma", "xray", "photon", "total")

# "Lu-177", "Lu177", "lu 177", "177Lu", "177-Lu", "Lu-177m", "177mLu" (m, n: metastable states).
_SYMBOL_FIRST = re.compile(r"^([A-Za-z]{1,2})[\s_-]*(\d{1,3})([mn]?)$")
_MASS_FIRST = re.compile(r"^(\d{1,3})([mn]?)[\s_-]*([A-Za-z]{1,2})$")


@dataclass(frozen=True, eq=False)
class Nuclide:
    """Decay data of one radionuclide, per nuclear transformation (decay).

    Arrays are 1-D, read-only and sorted by ascending energy.
    Yields are numbers emitted per decay (they can exceed 1 in total, e.g. for Auger electrons).

    Attributes:
        name: ICRP-107 name, e.g. ``"Lu-177"``.
        half_life_s: physical half-life in seconds.
        photon_energies_MeV, photon_yields, photon_is_xray: gamma and X-ray lines, shape (n_photon,).
        beta_mean_energies_MeV, beta_yields: mean energy and yield of each beta-minus branch, shape (n_branch,).
        beta_spectrum_edges_MeV: energy bin edges of the beta-minus spectrum (kinetic energy of one beta particle),
            1 keV bins from the lowest tabulated energy (0 for 177Lu) to the endpoint, shape (n_bin + 1,).
        beta_spectrum_probabilities: probability of each bin, shape (n_bin,), summing to 1 (both empty without a
            tabulated spectrum). Sample a bin with these, then an energy uniformly inside it.
        electron_energies_MeV, electron_yields, electron_is_auger: discrete electron lines, internal conversion
            and Auger, shape (n_electron,).
        source: data provenance (publication and package version).
    """

    name: str
    half_life_s: float
    photon_energies_MeV: np.ndarray
    photon_yields: np.ndarray
    photon_is_xray: np.ndarray
    beta_mean_energies_MeV: np.ndarray
    beta_yields: np.ndarray
    beta_spectrum_edges_MeV: np.ndarray
    beta_spectrum_probabilities: np.ndarray
    electron_energies_MeV: np.ndarray
    electron_yields: np.ndarray
    electron_is_auger: np.ndarray
    source: str

    @property
    def decay_constant_per_s(self) -> float:
        """Decay constant ln(2) / T1/2 in 1/s."""
        return LN2 / self.half_life_s

    def photon_lines(self, min_yield: float = 0.0, min_energy_MeV: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Gamma and X-ray lines with yield >= ``min_yield`` and energy >= ``min_energy_MeV``.

        ICRP-107 lists X-rays down to a few tens of eV, some with yields above 1 per decay (177Lu: 19 eV,
        1.28 per decay); set ``min_energy_MeV`` (e.g. 0.01) to keep only lines that travel in tissue.

        Returns:
            (energies in MeV, yields per decay), both shape (n,), ascending in energy.
        """
        keep = (self.photon_yields >= min_yield) & (self.photon_energies_MeV >= min_energy_MeV)
        return self.photon_energies_MeV[keep], self.photon_yields[keep]

    def mean_energy_per_decay_MeV(self, kind: str) -> float:
        """Mean energy emitted per decay (MeV/decay) by radiation ``kind``.

        ``kind`` is one of :data:`ENERGY_KINDS`: ``beta`` (sum over branches of mean energy x yield, the
        ICRP-107 value), ``conversion_electron``, ``auger``, ``electron`` (both), ``gamma``, ``xray``,
        ``photon`` (both) or ``total`` (beta + electron + photon).
        """
        ce = ~self.electron_is_auger
        gamma = ~self.photon_is_xray
        parts = {
            "beta": float(np.sum(self.beta_mean_energies_MeV * self.beta_yields)),
            "conversion_electron": float(np.sum(self.electron_energies_MeV[ce] * self.electron_yields[ce])),
            "auger": float(np.sum(self.electron_energies_MeV[~ce] * self.electron_yields[~ce])),
            "gamma": float(np.sum(self.photon_energies_MeV[gamma] * self.photon_yields[gamma])),
            "xray": float(np.sum(self.photon_energies_MeV[~gamma] * self.photon_yields[~gamma])),
        }
        parts["electron"] = parts["conversion_electron"] + parts["auger"]
        parts["photon"] = parts["gamma"] + parts["xray"]
        parts["total"] = parts["beta"] + parts["electron"] + parts["photon"]
        if kind not in parts:
            raise ValueError(f"kind: {kind!r} is not a radiation kind; choose one of {', '.join(ENERGY_KINDS)}")
        return parts[kind]

    def beta_spectrum_mean_energy_MeV(self) -> float:
        """Mean kinetic energy (MeV) of one beta particle in the binned spectrum, each bin taken at its centre.

        For 177Lu this agrees with the ICRP-107 branch mean (0.1333 MeV) to better than 0.1 %.
        """
        centres = 0.5 * (self.beta_spectrum_edges_MeV[:-1] + self.beta_spectrum_edges_MeV[1:])
        return float(np.sum(centres * self.beta_spectrum_probabilities))


def available_nuclides() -> list[str]:
    """Names of all nuclides in the ICRP-107 tables of the installed package, e.g. ``"Lu-177"``."""
    return sorted(path.stem for path in (icrp107_source_path / "icrp107").glob("*.json"))


def canonical_nuclide_name(name: str) -> str:
    """Spell a nuclide name the ICRP-107 way: ``"Lu177"``, ``"177Lu"``, ``"lu-177"`` -> ``"Lu-177"``.

    Raises:
        ValueError: if ``name`` is not a nuclide name or not in the ICRP-107 tables.
    """
    if not isinstance(name, str):
        raise ValueError(f"nuclide: expected a name such as 'Lu-177', got {type(name).__name__}")
    text = name.strip()
    match = _SYMBOL_FIRST.match(text)
    if match:
        symbol, mass, state = match.groups()
    else:
        match = _MASS_FIRST.match(text)
        if not match:
            raise ValueError(f"nuclide: {name!r} is not a nuclide name (expected e.g. 'Lu-177', 'Lu177' or '177Lu')")
        mass, state, symbol = match.groups()
    canonical = f"{symbol.capitalize()}-{int(mass)}{state.lower()}"
    if not (icrp107_source_path / "icrp107" / f"{canonical}.json").is_file():
        raise ValueError(f"nuclide: {name!r} ({canonical}) is not in the ICRP-107 tables of {_PACKAGE}")
    return canonical


@functools.cache
def _load_canonical(canonical: str) -> Nuclide:
    def table(kind: str) -> np.ndarray:
        spectrum = get_icrp107_spectrum(canonical, kind)
        pairs = np.column_stack([spectrum["energies"], spectrum["weights"]]).astype(np.float64).reshape(-1, 2)
        return pairs[np.argsort(pairs[:, 0], kind="stable")]

    unsupported = [kind for kind in _UNSUPPORTED_EMISSIONS if table(kind).size]
    if unsupported:
        raise ValueError(
            f"nuclide: {canonical} emits {', '.join(unsupported)}; only beta-minus, electron and photon "
            "emitters are supported"
        )
    header = get_icrp107_spectrum(canonical, "gamma")
    unit = header["time_unit"]
    if unit not in _SECONDS_PER_TIME_UNIT:
        raise ValueError(f"nuclide: {canonical} has half-life unit {unit!r}, which is not known")

    gamma, xray = table("gamma"), table("X")
    photons = np.concatenate([gamma, xray])
    photon_is_xray = np.concatenate([np.zeros(len(gamma), bool), np.ones(len(xray), bool)])
    photon_order = np.argsort(photons[:, 0], kind="stable")
    conversion, auger = table("IE"), table("auger")
    electrons = np.concatenate([conversion, auger])
    electron_is_auger = np.concatenate([np.zeros(len(conversion), bool), np.ones(len(auger), bool)])
    electron_order = np.argsort(electrons[:, 0], kind="stable")
    beta = table("beta-")
    edges, probabilities = _beta_spectrum_bins(table("b-spectra"))

    return Nuclide(
        name=canonical,
        half_life_s=float(header["half_life"]) * _SECONDS_PER_TIME_UNIT[unit],
        photon_energies_MeV=_frozen(photons[photon_order, 0]),
        photon_yields=_frozen(photons[photon_order, 1]),
        photon_is_xray=_frozen(photon_is_xray[photon_order]),
        beta_mean_energies_MeV=_frozen(beta[:, 0]),
        beta_yields=_frozen(beta[:, 1]),
        beta_spectrum_edges_MeV=_frozen(edges),
        beta_spectrum_probabilities=_frozen(probabilities),
        electron_energies_MeV=_frozen(electrons[electron_order, 0]),
        electron_yields=_frozen(electrons[electron_order, 1]),
        electron_is_auger=_frozen(electron_is_auger[electron_order]),
        source=data_source(),
    )


def load_nuclide(name: str) -> Nuclide:
    """Decay data of nuclide ``name`` ("Lu-177", "Lu177", "177Lu", any case), read once and cached.

    Raises:
        ValueError: unknown name, or a nuclide emitting alphas, positrons, neutrons or fission fragments.
    """
    return _load_canonical(canonical_nuclide_name(name))


def data_source() -> str:
    """Provenance string for decay data: publication and installed package version."""
    version = importlib.metadata.version(_PACKAGE)
    return f"ICRP Publication 107 (ICRP 2008, Ann. ICRP 38(3)) via {_PACKAGE} {version}"


def _beta_spectrum_bins(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin a tabulated spectrum ``[[E (MeV), dN/dE (1/MeV)], ...]`` into (edges, normalised probabilities).

    dN/dE is interpolated between the tabulated energies with a monotone cubic (PCHIP, which keeps it
    non-negative) and integrated exactly over bins of :data:`BETA_SPECTRUM_BIN_WIDTH_MEV` from the first
    tabulated energy to the last (the endpoint; the last bin may be narrower).
    """
    if len(grid) < 2:
        return np.zeros(0), np.zeros(0)
    energies, density = grid[:, 0], grid[:, 1]
    edges = np.append(np.arange(energies[0], energies[-1], BETA_SPECTRUM_BIN_WIDTH_MEV), energies[-1])
    cumulative = PchipInterpolator(energies, density).antiderivative()(edges)
    weights = np.clip(np.diff(cumulative), 0.0, None)
    return edges, weights / weights.sum()


def _frozen(values: np.ndarray) -> np.ndarray:
    array = np.array(values)
    array.flags.writeable = False
    return array
