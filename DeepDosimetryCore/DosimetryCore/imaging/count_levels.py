"""SPECT of one activity map at fixed total-count levels, as the residual dose-rate CNN of Li et al. was
trained and tested: 1.9e7, 5.5e6, 4.4e6 and 3.0e6 counts over all views, OSEM with attenuation and resolution
recovery, 16 iterations x 4 subsets.

The noise-free projections are computed once; each level scales them to its total count (equivalent to
another acquisition time per view), draws Poisson counts with its own seed and reconstructs with the matching
time, so every reconstruction is in Bq/mL of the same activity and only the noise differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.volume import image_from_array, set_unit
from DosimetryCore.imaging.projection import poisson_counts
from DosimetryCore.imaging.reconstruction import osem, simulate_spect_projections
from DosimetryCore.imaging.simulation import Acquisition, spect_projector

PAPER_COUNT_LEVELS = (1.9e7, 5.5e6, 4.4e6, 3.0e6)
"""Total counts of the four noise levels of Li et al. (all views together)."""
PAPER_ITERATIONS = 16
PAPER_SUBSETS = 4


def spect_at_count_levels(
    activity: sitk.Image,
    ct: sitk.Image,
    total_counts: Sequence[float] = PAPER_COUNT_LEVELS,
    acquisition: Acquisition | None = None,
    *,
    iterations: int = PAPER_ITERATIONS,
    subsets: int = PAPER_SUBSETS,
    seed: int,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> list[sitk.Image]:
    """OSEM-RR reconstructions (Bq/mL, on the activity grid) of ``activity`` at each total-count level.

    Args:
        activity: activity concentration (Bq/mL), axis-aligned 3D image.
        ct: CT (HU) on the same grid, for attenuation.
        total_counts: expected total counts over all views, one reconstruction each (> 0).
        acquisition: camera and protocol (views, collimator, sensitivity; the time per view is replaced);
            default :class:`~DosimetryCore.imaging.simulation.Acquisition`.
        iterations, subsets: OSEM settings.
        seed: seed of the Poisson noise (each level draws from its own child seed).
    Returns:
        one float32 image per level, in the order of ``total_counts``.
    """
    levels = [float(c) for c in total_counts]
    if not levels or not all(np.isfinite(c) and c > 0 for c in levels):
        raise ValueError(f"total_counts: expected positive total counts, got {list(total_counts)}")
    report = progress or no_progress
    acquisition = acquisition or Acquisition()
    device = resolve_device(device)
    projector = spect_projector(activity, ct, acquisition, device)
    expected = simulate_spect_projections(
        sitk.GetArrayFromImage(activity).astype(np.float32),
        projector,
        sensitivity_cps_per_MBq=acquisition.sensitivity_cps_per_MBq,
        time_per_view_s=acquisition.time_per_view_s,
    )
    total = float(expected.sum())
    if not total > 0:
        raise ValueError("activity: projects to zero counts; nothing to reconstruct")
    seeds = [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(len(levels))]
    images = []
    for index, (counts, level_seed) in enumerate(zip(levels, seeds, strict=True)):
        factor = counts / total
        noisy = poisson_counts(expected * factor, level_seed)
        recon = osem(
            noisy,
            projector,
            sensitivity_cps_per_MBq=acquisition.sensitivity_cps_per_MBq,
            time_per_view_s=acquisition.time_per_view_s * factor,
            iterations=iterations,
            subsets=subsets,
            progress=sub_progress(report, index / len(levels), (index + 1) / len(levels)),
        )
        image = image_from_array(recon.cpu().numpy().astype(np.float32), activity)
        images.append(set_unit(image, "Bq/mL", f"activity concentration, OSEM-RR of {counts:.3g} counts"))
    return images
