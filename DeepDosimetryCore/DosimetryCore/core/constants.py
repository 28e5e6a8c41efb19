"""Physical constants and unit conversions, in one place.

Every value states its source. "Exact" means fixed by definition in the 2019 revision of the SI
(BIPM, The International System of Units, 9th edition, 2019) or by the definition of the unit.
Measured constants are CODATA 2018 recommended values (Tiesinga et al., Rev. Mod. Phys. 93, 025010
(2021); https://physics.nist.gov/cuu/Constants/).
"""

import math

# --- energy -------------------------------------------------------------------------------------
# Elementary charge e = 1.602176634e-19 C (exact, SI 2019), so 1 eV = 1.602176634e-19 J (exact).
J_PER_EV = 1.602176634e-19
# 1 MeV = 1e6 eV (definition of the prefix).
J_PER_MEV = 1.0e6 * J_PER_EV
# 1 keV = 1e-3 MeV (definition of the prefix).
MEV_PER_KEV = 1.0e-3
EV_PER_MEV = 1.0e6

# --- time ---------------------------------------------------------------------------------------
# Minute, hour and day are non-SI units accepted for use with the SI (SI brochure 9th ed., Table 8).
SECONDS_PER_MINUTE = 60.0
SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
# Julian year, 365.25 d exactly (IAU); used to convert half-lives given in years.
SECONDS_PER_YEAR = 365.25 * SECONDS_PER_DAY

# --- activity -----------------------------------------------------------------------------------
# 1 Bq = 1 decay per second (SI derived unit); 1 Ci = 3.7e10 Bq exactly (definition of the curie).
BQ_PER_MBQ = 1.0e6
BQ_PER_GBQ = 1.0e9
BQ_PER_CI = 3.7e10
BQ_PER_MCI = 3.7e7
# ln 2, for decay constant = ln 2 / half-life.
LN2 = math.log(2.0)

# --- amount of substance ------------------------------------------------------------------------
# Avogadro constant N_A = 6.02214076e23 mol^-1 (exact, SI 2019).
AVOGADRO_PER_MOL = 6.02214076e23

# --- electron -----------------------------------------------------------------------------------
# Electron rest energy m_e c^2 = 0.51099895000(15) MeV (CODATA 2018).
ELECTRON_REST_ENERGY_MEV = 0.51099895000
# Fine-structure constant alpha = 7.2973525693(11)e-3 (CODATA 2018).
FINE_STRUCTURE_CONSTANT = 7.2973525693e-3
# Classical electron radius r_e = 2.8179403262(13) e-15 m (CODATA 2018), for Klein-Nishina.
CLASSICAL_ELECTRON_RADIUS_CM = 2.8179403262e-13

# --- lengths, masses, volumes -------------------------------------------------------------------
# Definitions of the SI prefixes; 1 mL = 1 cm^3 by definition of the litre (1 L = 1 dm^3).
MM_PER_CM = 10.0
G_PER_KG = 1000.0
CM3_PER_ML = 1.0

# --- dose ---------------------------------------------------------------------------------------
# Definition of the SI prefix milli.
MGY_PER_GY = 1000.0

# --- water, for electron transport -----------------------------------------------------------------
# Mean excitation energy of liquid water, 75 eV (ICRU Report 37, 1984; used by NIST ESTAR).
WATER_MEAN_EXCITATION_ENERGY_MEV = 75.0e-6

# --- electron elastic scattering (screened Rutherford) -------------------------------------------------
# Thomas-Fermi screening radius a = 0.885 a0 Z^(-1/3) and Moliere's screening parameter
# eta = (1/4) (hbar / (p a))^2 (1.13 + 3.76 (alpha Z / beta)^2): G. Moliere, Z. Naturforsch. 2a (1947) 133,
# in the form of H. A. Bethe, Phys. Rev. 89 (1953) 1256 (as used by EGS4 and Geant4's Urban model).
THOMAS_FERMI_RADIUS_FACTOR = 0.885
MOLIERE_SCREENING_CONSTANT = 1.13
MOLIERE_SCREENING_COULOMB_FACTOR = 3.76
