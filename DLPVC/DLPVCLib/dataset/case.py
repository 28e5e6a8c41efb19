"""One DL-PVC training case (Leube et al.): a true activity in a synthetic torso and its OSEM reconstructions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import SimpleITK as sitk
import torch

import DosimetryCore
from DLPVCLib.dataset.activity_kinds import check_kind, random_case, torso_case, warm_case
from DLPVCLib.dataset.layout import DEFAULT_ACQUISITION, DEFAULT_RECONSTRUCTIONS, TOTAL_ACTIVITY_RANGE_MBQ, PVCCase
from DLPVCLib.dataset.seeds import case_sub_seeds
from DosimetryCore import phantoms
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.provenance import stamp
from DosimetryCore.core.validation import check_range, check_seed
from DosimetryCore.imaging import simulation


def simulate_pvc_case(
    seed: int,
    size: int = 128,
    spacing_mm: float = 4.8,
    acquisition: simulation.Acquisition = DEFAULT_ACQUISITION,
    total_activity_range_MBq: tuple[float, float] = TOTAL_ACTIVITY_RANGE_MBQ,
    kind: str = "random",
    reconstructions: Sequence[str] = DEFAULT_RECONSTRUCTIONS,
    *,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> PVCCase:
    """Simulate one DL-PVC training case (seed 003): true activity, CT, regions and OSEM images.

    ``kind`` is what the true activity is (:data:`~DLPVCLib.dataset.activity_kinds.CASE_KINDS`): seed 003's
    random shapes (default, described below), a patient-like torso or random shapes over a warm body
    (:mod:`DLPVCLib.dataset.activity_kinds`); the body, total activity and SPECT are the same for every kind.

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
    seed; only the ``reconstructions`` asked for are made (default :data:`DEFAULT_RECONSTRUCTIONS`: RR from
    noisy projections; a dataset's val cases ask for its noise-free twin too), each the same image whichever
    others are made. ``masks`` are the
    IY-PVC regions of the kind (for ``random``, :func:`~DLPVCLib.dataset.activity_kinds.region_labelmap` of the
    truth). Deterministic for a seed and device.

    Returns:
        :class:`PVCCase` with images ``truth`` (Bq/mL), ``ct`` (HU), ``masks`` (labelmap) and the
        ``reconstructions`` (Bq/mL), all (z, y, x) = (size, size, size) float32 (masks
        uint32) on one grid, each carrying the case provenance under
        :data:`DosimetryCore.core.metadata.PROVENANCE_KEY`.
    """
    report = progress or no_progress
    seed = check_seed(seed)
    total_range = check_range(total_activity_range_MBq, "total_activity_range_MBq")
    device = resolve_device(device)
    seeds = case_sub_seeds(seed)
    kind = check_kind(kind)
    low, high = np.log(total_range)
    total_MBq = float(np.exp(np.random.default_rng(seeds["total_activity"]).uniform(low, high)))
    report(0.0, "Body phantom")
    if kind == "torso":
        body, truth, masks, sampled = torso_case(size, spacing_mm, seeds["anatomy"], seeds["activity"], total_MBq)
    else:
        body = phantoms.make_torso(size, spacing_mm, seed=seeds["anatomy"])
        report(0.05, "Random activity distribution")
        make = warm_case if kind == "warm" else random_case
        truth, masks, sampled = make(body, seeds["activity"], total_MBq)
    spect = simulation.simulate_spect(
        truth,
        body.ct,
        acquisition,
        seed=seeds["spect_noise"],
        reconstructions=reconstructions,
        device=device,
        progress=sub_progress(report, 0.1, 1.0),
    )
    provenance = {
        "generator": "DLPVCLib.dataset.simulate_pvc_case",
        "deepdosimetry": DosimetryCore.__version__,
        "seed": seed,
        "seeds": seeds,
        "size": int(size),
        "spacing_mm": float(spacing_mm),
        "acquisition": asdict(acquisition),
        "total_activity_range_MBq": list(total_range),
        "kind": kind,
        "total_activity_MBq": total_MBq,
        **sampled,
        "n_regions": int(sitk.GetArrayViewFromImage(masks).max()),
        "device": device.type,
    }
    reconstructed = {key: image for key, image in spect.items() if key in simulation.OSEM_IMAGES}
    images = {"truth": truth, "ct": body.ct, "masks": masks, **reconstructed}
    for image in images.values():
        stamp(image, provenance)
    report(1.0, "Case done")
    return PVCCase(images, provenance)
