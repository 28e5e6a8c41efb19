"""The one metric table: the same keys and units in reports, evaluations and model cards.

A row holds, for one method's image against the truth (both in the same unit, e.g. Bq/mL):

======================  ======  =================================================================
key                     unit    definition (Leube et al., J Nucl Med 2024)
======================  ======  =================================================================
``ssim``                1       SSIM inside the true active region (truth > 0), data range of the
                                truth (max - min)
``nrmse_percent``       %       RMSE inside truth > 0 over the truth's range there
``vaa_percent``         %       share of voxels inside truth > 0 within 5 % of the truth
``ad_percent``          %       total activity deviation over the whole image
``RC <segment>``        1       recovery coefficient: mean estimate / mean truth in the segment
======================  ======  =================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from DosimetryCore.core.units import PERCENT, RATIO
from DosimetryCore.evaluation import metrics

METRICS = {"ssim": "SSIM", "nrmse_percent": "NRMSE (%)", "vaa_percent": "VAA (%)", "ad_percent": "AD (%)"}
"""Metric key -> heading in printed tables, in table order."""

METRIC_UNITS = {"ssim": RATIO, "nrmse_percent": PERCENT, "vaa_percent": PERCENT, "ad_percent": PERCENT}
"""Metric key -> unit ("1": dimensionless ratio); every :data:`RC_PREFIX` column is a ratio."""

RC_PREFIX = "RC "
"""Prefix of the per-segment recovery-coefficient columns (``RC liver``)."""

NRMSE_NORMALIZATION = "range"
"""NRMSE divisor: max - min of the truth inside the active region.

Leube et al. leave the divisor to their supplement; with the range, the uncorrected reconstructions
come out near their Table 1 (about 10 %), whereas the truth's root mean square would give several
times that.
"""

SETTINGS = {
    "nrmse_normalization": NRMSE_NORMALIZATION,
    "ssim_data_range": "max(truth) - min(truth)",
    "metric_region": "truth > 0 (SSIM, NRMSE, VAA); whole image (AD)",
}
"""How the metrics are computed, as recorded beside every table."""


def image_metrics(
    estimate: np.ndarray, truth: np.ndarray, segments: Mapping[str, np.ndarray] | None = None
) -> dict[str, float]:
    """The metric row of ``estimate`` against ``truth`` (arrays ``(z, y, x)`` in the same unit).

    ``segments`` maps a segment name to its boolean mask (same shape) for the ``RC <segment>``
    columns. Raises ValueError when the truth has no voxel > 0 or a segment's truth mean is 0.
    """
    truth = np.asarray(truth, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    inside = truth > 0
    if not inside.any():
        raise ValueError("truth: has no voxel > 0; the metrics are computed where the truth is present")
    row = {
        "ssim": metrics.ssim(estimate, truth, data_range=float(truth.max() - truth.min()), mask=inside),
        "nrmse_percent": 100.0 * metrics.nrmse(estimate, truth, inside, normalization=NRMSE_NORMALIZATION),
        "vaa_percent": 100.0 * metrics.vaa(estimate, truth, inside, alpha=metrics.VAA_ALPHA),
        "ad_percent": metrics.activity_deviation_percent(estimate, truth),
    }
    for name, mask in (segments or {}).items():
        row[f"{RC_PREFIX}{name}"] = metrics.recovery_coefficient(estimate, truth, mask)
    return row


def column_units(row: Mapping[str, Any]) -> dict[str, str]:
    """Column -> unit for the metric columns of a row (other columns, e.g. ``method``, are left out)."""
    return {
        column: METRIC_UNITS.get(column, RATIO)
        for column in row
        if column in METRIC_UNITS or column.startswith(RC_PREFIX)
    }
