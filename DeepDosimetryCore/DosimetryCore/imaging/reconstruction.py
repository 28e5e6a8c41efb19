"""SPECT simulation and OSEM reconstruction in activity concentration (Bq/mL).

Both use a :class:`~DosimetryCore.imaging.projection.SpectProjector` as the system model, so data simulated
with a projector and reconstructed with the same one recover the simulated units:

``expected counts = counts_per_Bq_per_mL * projector.forward(activity [Bq/mL]) + scatter``, with
``counts_per_Bq_per_mL = voxel volume [mL] * 1e-6 [MBq/Bq] * sensitivity [counts/s per MBq] *
time per view [s]``.

Attenuation correction is part of the model when the projector holds a mu map; resolution recovery
when it holds a collimator-detector response (``projector.with_response(None)`` reconstructs
without it, sharing the cached geometry).
"""

from __future__ import annotations

import numpy as np
import torch

from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.core.validation import check_finite_nonnegative
from DosimetryCore.imaging.projection import (
    SpectProjector,
    counts_per_Bq_per_mL,
    poisson_counts,
)


def simulate_spect_projections(
    activity_Bq_per_mL: torch.Tensor | np.ndarray,
    projector: SpectProjector,
    *,
    sensitivity_cps_per_MBq: float,
    time_per_view_s: float,
    noise: bool = False,
    seed: int | None = None,
) -> torch.Tensor:
    """SPECT projections (counts) of an activity map.

    Args:
        activity_Bq_per_mL: activity concentration (Bq/mL), shape ``projector.shape`` ``(z, y, x)``.
        projector: the acquisition's system model (geometry, attenuation, collimator response).
        sensitivity_cps_per_MBq: camera sensitivity (counts/s per MBq, one detector head).
        time_per_view_s: acquisition time of each view (s).
        noise: replace the expected counts by Poisson samples.
        seed: seed of the Poisson draw (reproducible); ``None`` uses torch's global generator.

    Returns:
        counts, shape ``projector.projection_shape`` ``(views, z, u)``, on the projector's device.
    """
    activity = projector.as_volume(activity_Bq_per_mL, "activity_Bq_per_mL")
    check_finite_nonnegative(activity, "activity_Bq_per_mL")
    expected = projector.forward(activity).mul_(_scale(projector, sensitivity_cps_per_MBq, time_per_view_s))
    return poisson_counts(expected, seed) if noise else expected


def osem(
    projections: torch.Tensor | np.ndarray,
    projector: SpectProjector,
    *,
    sensitivity_cps_per_MBq: float,
    time_per_view_s: float,
    iterations: int = 6,
    subsets: int = 6,
    scatter: torch.Tensor | np.ndarray | None = None,
    progress: ProgressCallback | None = None,
) -> torch.Tensor:
    """Ordered-subsets expectation maximisation (Hudson & Larkin 1994) of SPECT projections.

    Args:
        projections: measured counts, shape ``projector.projection_shape`` ``(views, z, u)``.
        projector: system model; attenuation correction with its mu map, resolution recovery with
            its collimator response.
        sensitivity_cps_per_MBq: camera sensitivity (counts/s per MBq, one detector head).
        time_per_view_s: acquisition time of each view (s).
        iterations: passes through all subsets.
        subsets: number of subsets; subset ``b`` holds views ``b, b + subsets, b + 2 * subsets, ...``.
        scatter: additive scatter estimate (counts), same shape as ``projections``; ``None`` for none.
        progress: ``progress(fraction, message)`` called after every subset update.

    Returns:
        activity concentration (Bq/mL), shape ``projector.shape`` ``(z, y, x)``; zero where no view
        sees the voxel.
    """
    report = progress or no_progress
    measured = _counts(projections, projector, "projections")
    background = None if scatter is None else _counts(scatter, projector, "scatter")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations: expected a positive integer, got {iterations}")
    if int(subsets) != subsets or not 1 <= subsets <= projector.n_views:
        raise ValueError(f"subsets: expected an integer from 1 to {projector.n_views} (views), got {subsets}")
    scale = _scale(projector, sensitivity_cps_per_MBq, time_per_view_s)
    groups = [list(range(b, projector.n_views, subsets)) for b in range(subsets)]
    report(0.0, "OSEM: sensitivity images")
    sensitivities = [projector.back(torch.ones_like(measured[views]), views) for views in groups]
    total_sensitivity = torch.stack(sensitivities).sum(dim=0)
    seen = total_sensitivity > 0
    # Uniform start with the measured total: sum(y) = scale * sum_j s_j * x.
    level = float((measured - background).clamp_min(0).sum()) if background is not None else float(measured.sum())
    estimate = seen.to(projector.dtype) * (level / (scale * float(total_sensitivity.sum())))
    steps = iterations * subsets
    for iteration in range(iterations):
        for b, views in enumerate(groups):
            estimate = _update(estimate, measured, background, projector, views, sensitivities[b], scale)
            step = iteration * subsets + b + 1
            report(step / steps, f"OSEM iteration {iteration + 1}/{iterations}, subset {b + 1}/{subsets}")
    return estimate


def _update(
    estimate: torch.Tensor,
    measured: torch.Tensor,
    background: torch.Tensor | None,
    projector: SpectProjector,
    views: list[int],
    sensitivity: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """One OSEM sub-iteration: ``x <- x / (A_b^T 1) * A_b^T (y_b / (scale * A_b x + s_b))``."""
    expected = projector.forward(estimate, views).mul_(scale)
    if background is not None:
        expected.add_(background[views])
    ratio = torch.where(expected > 0, measured[views] / expected, 0.0)
    correction = projector.back(ratio, views)
    updated = torch.where(sensitivity > 0, estimate * correction / sensitivity, 0.0)
    # Values this far below the maximum carry no information in float32 and, decaying towards
    # denormal numbers, would slow the matrix products down by orders of magnitude.
    return updated.masked_fill_(updated < 1e-12 * float(updated.max()), 0.0)


def _counts(values: torch.Tensor | np.ndarray, projector: SpectProjector, name: str) -> torch.Tensor:
    counts = projector.as_projections(values, name)
    check_finite_nonnegative(counts, name)
    return counts


def _scale(projector: SpectProjector, sensitivity_cps_per_MBq: float, time_per_view_s: float) -> float:
    """Expected counts per projected Bq/mL (see :func:`~DosimetryCore.imaging.projection.counts_per_Bq_per_mL`)."""
    if not time_per_view_s > 0:
        raise ValueError(f"time_per_view_s: expected a positive acquisition time per view in s, got {time_per_view_s}")
    return counts_per_Bq_per_mL(projector.spacing_mm, sensitivity_cps_per_MBq, time_per_view_s)
