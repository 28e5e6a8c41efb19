"""One DL-PVC training case (Leube et al.): random activity in a synthetic torso and its four OSEM reconstructions."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

import DosimetryCore
from DLPVCLib.dataset.layout import (
    ACTIVE_FRACTION,
    DEFAULT_ACQUISITION,
    RECONSTRUCTIONS,
    SHAPE_DIAMETER_MM,
    TOTAL_ACTIVITY_RANGE_MBQ,
    PVCCase,
)
from DLPVCLib.dataset.seeds import case_sub_seeds
from DosimetryCore import phantoms
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.metadata import QUANTITY_KEY
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.provenance import read as read_provenance
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.validation import check_range, check_seed
from DosimetryCore.imaging import simulation


def region_labelmap(truth: sitk.Image) -> sitk.Image:
    """Regions of the true activity for iterative Yang PVC: connected components of ``truth > 0``.

    :func:`DosimetryCore.phantoms.random_activity` does not return the masks of its random shapes,
    so the regions are taken from the truth itself (seed 003 likewise gave IY-PVC the ground-truth
    activity mask): every face-connected (6-neighbour) component of the active voxels is one
    region, labelled 1..K by size, largest first; label 0 is the inactive rest. Touching shapes
    form one region. Returns a uint32 labelmap on the truth's grid.
    """
    active = sitk.GetArrayViewFromImage(truth) > 0
    components, count = ndimage.label(active)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    relabel = np.zeros(count + 1, dtype=np.uint32)
    relabel[1 + np.argsort(-sizes, kind="stable")] = np.arange(1, count + 1, dtype=np.uint32)
    image = sitk.GetImageFromArray(relabel[components])
    image.CopyInformation(truth)
    image.SetMetaData(QUANTITY_KEY, "regions of the true activity (connected components)")
    return image


def simulate_pvc_case(
    seed: int,
    size: int = 128,
    spacing_mm: float = 4.8,
    acquisition: simulation.Acquisition = DEFAULT_ACQUISITION,
    total_activity_range_MBq: tuple[float, float] = TOTAL_ACTIVITY_RANGE_MBQ,
    *,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> PVCCase:
    """Simulate one DL-PVC training case (seed 003): true activity, CT, regions and four OSEM images.

    The body is a :func:`~DosimetryCore.phantoms.make_torso` phantom (``size``^3 voxels of
    ``spacing_mm`` mm; its field of view must hold about 500 x 360 x 610 mm, e.g. 128 x 4.8 mm
    or 32 x 19.2 mm); only its CT and body outline are used. The activity is a
    :func:`~DosimetryCore.phantoms.random_activity` distribution inside the body, with:

    - random shapes of 9.6-240 mm diameter (:data:`SHAPE_DIAMETER_MM`, seed 003's 4-100 voxels of
      2.4 mm), each multiplied by a smooth non-uniform pattern (the default levels 1-10,
      heterogeneity 0.5, 40 mm correlation), added until a target active volume is reached;
    - target active volume U(1 %, 10 %) of the body (:data:`ACTIVE_FRACTION`): 0.4-5 L of this
      40-50 L torso, from kidneys and spleen alone (about 0.5 L) to liver, kidneys, spleen,
      bladder and a large tumour burden;
    - total activity in the field of view log-uniform in ``total_activity_range_MBq`` (default
      300-3000 MBq, :data:`TOTAL_ACTIVITY_RANGE_MBQ`).

    Seed 003 scaled its distributions to the active volumes and total activities of 717
    peri-therapeutic 177Lu SPECT/CT acquisitions (429 PSMA-I&T, 288 DOTATATE; 202 patients) but
    gives the ranges only in its supplement, so these ranges are ours: 300-3000 MBq is our
    estimate of the activity left in a torso field of view 1 to 4 days after 3.7-7.4 GBq (seed
    003's latest acquisitions were 4 days after injection). The noise level of the noisy
    reconstructions follows from it and from ``acquisition``'s sensitivity and time per view.

    SPECT: :func:`~DosimetryCore.imaging.simulation.simulate_spect` with ``acquisition`` (default: seed
    003's 120 views x 30 s, MELP, noRR 10x2 and RR 6x6 OSEM), Poisson noise seeded from the case
    seed. ``masks`` is :func:`region_labelmap` of the truth. Deterministic for a seed and device.

    Returns:
        :class:`PVCCase` with images ``truth`` (Bq/mL), ``ct`` (HU), ``masks`` (labelmap) and the
        four :data:`RECONSTRUCTIONS` (Bq/mL), all (z, y, x) = (size, size, size) float32 (masks
        uint32) on one grid, each carrying the case provenance under
        :data:`DosimetryCore.core.metadata.PROVENANCE_KEY`.
    """
    report = progress or no_progress
    seed = check_seed(seed)
    total_range = check_range(total_activity_range_MBq, "total_activity_range_MBq")
    device = resolve_device(device)
    seeds = case_sub_seeds(seed)
    report(0.0, "Body phantom")
    body = phantoms.make_torso(size, spacing_mm, seed=seeds["anatomy"])
    low, high = np.log(total_range)
    total_MBq = float(np.exp(np.random.default_rng(seeds["total_activity"]).uniform(low, high)))
    report(0.05, "Random activity distribution")
    truth = phantoms.random_activity(
        body,
        seeds["activity"],
        total_activity_MBq=total_MBq,
        active_fraction=ACTIVE_FRACTION,
        shape_diameter_mm=SHAPE_DIAMETER_MM,
    )
    masks = region_labelmap(truth)
    spect = simulation.simulate_spect(
        truth, body.ct, acquisition, seed=seeds["spect_noise"], device=device, progress=sub_progress(report, 0.1, 1.0)
    )
    activity_record = read_provenance(truth)
    provenance = {
        "generator": "DLPVCLib.dataset.simulate_pvc_case",
        "deepdosimetry": DosimetryCore.__version__,
        "seed": seed,
        "seeds": seeds,
        "size": int(size),
        "spacing_mm": float(spacing_mm),
        "acquisition": asdict(acquisition),
        "total_activity_range_MBq": list(total_range),
        "total_activity_MBq": total_MBq,
        "active_fraction": activity_record["active_fraction"],
        "n_shapes": activity_record["n_shapes"],
        "n_regions": int(sitk.GetArrayViewFromImage(masks).max()),
        "device": device.type,
    }
    images = {"truth": truth, "ct": body.ct, "masks": masks, **{key: spect[key] for key in RECONSTRUCTIONS}}
    for image in images.values():
        stamp(image, provenance)
    report(1.0, "Case done")
    return PVCCase(images, provenance)
