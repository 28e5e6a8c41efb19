"""Units of the images and tables, and how names spell them.

Values carry their unit in the image metadata (:data:`~DosimetryCore.core.metadata.UNIT_KEY`) and
in table column names. Names and column suffixes spell a unit one way everywhere, with SI case:
``_Bq_per_mL``, ``_MBq``, ``_Gy_per_h``, ``_mm``, ``_mL``, ``_s``, ``_keV``, ``_MeV``,
``_per_cm`` (linear attenuation, only where the name says so), ``_percent``.
"""

ACTIVITY_UNIT = "Bq/mL"
"""Unit of activity-concentration images."""

DOSE_RATE_UNIT = "Gy/h"
"""Unit of dose-rate images and tables."""

CT_UNIT = "HU"
"""Unit of CT images (Hounsfield units)."""

PERCENT = "%"
"""Unit of metrics given in percent."""

RATIO = "1"
"""Unit of a dimensionless ratio."""


def name_suffix(unit: str) -> str:
    """The spelling of ``unit`` at the end of a name: ``"Gy/h"`` -> ``"Gy_per_h"``, ``"%"`` -> ``"percent"``."""
    if unit == PERCENT:
        return "percent"
    return unit.replace("/", "_per_").replace("*", "_").replace("(", "").replace(")", "")
