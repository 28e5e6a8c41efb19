"""``deepdosimetry demo-pvc`` (``make demo``): one simulated case through both PVC methods.

The steps, each a library call used elsewhere in the project:

1. a simulated case on the shipped DL-PVC model's network grid, one of :data:`CASES`:

   - ``torso`` (default): a patient-like 177Lu-PSMA distribution (:func:`DosimetryCore.phantoms.make_torso`:
     organs with uptake over a soft-tissue background, and lesions), the regions being its organ and lesion
     labels: what a physicist runs DL-PVC on;
   - ``random``: a case as seed 003 trains and tests on, and as its Fig. 4 shows one from its test set: random
     shapes of non-uniform 177Lu activity in a cold synthetic torso
     (:func:`DLPVCLib.dataset.simulate_pvc_case`), the regions being the connected components of the true
     activity. The seed is the case seed itself; the cases of a dataset have 32-bit seeds drawn from its dataset
     seed, and the default 2024 is none of those of the shipped model's training or held-out data;

2. its SPECT (:func:`DosimetryCore.imaging.simulation.simulate_spect`: seed 003's 120 views x 30 s, MELP
   collimator, Poisson noise) reconstructed by OSEM with resolution recovery (``osem_rr_noisy``,
   the input DL-PVC was trained on);
3. DL-PVC (:func:`DLPVCLib.correction.correct_dl`, the hash-checked shipped model) and IY-PVC
   (:func:`DLPVCLib.correction.correct_iy`, 10 iterations, the case's regions, the FWHM of the
   matched filter between the truth and the noise-free RR reconstruction of the case);
4. :func:`DosimetryCore.evaluation.report.write_report`: ``metrics.csv`` (the metric table: SSIM, NRMSE, VAA, AD and the
   recovery coefficient per segment, for no PVC, IY-PVC and DL-PVC), ``report.png`` (slices and a
   line profile: truth, no PVC, IY-PVC, DL-PVC, as seed 003 Fig. 4), ``report.mrb`` (a Slicer
   scene with every volume, the segmentation and the metrics table) and ``report.json``
   (metrics, units and provenance), plus each volume as NRRD.

Everything follows from ``--case`` and ``--seed``: the same ones on the same machine give the same
numbers.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

import DosimetryCore
from DLPVCLib.constants import DEFAULT_MODEL
from DLPVCLib.correction import NetworkGrid, correct_dl, correct_iy, load_dlpvc_model, total_activity_Bq
from DLPVCLib.dataset import simulate_pvc_case
from DLPVCLib.evaluation import matched_filter_fwhm, system_fwhm_mm
from DosimetryCore import io, phantoms
from DosimetryCore.core.constants import BQ_PER_MBQ
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.validation import check_seed
from DosimetryCore.evaluation import report
from DosimetryCore.imaging import simulation

DEMO_SEED = 2024
"""Default seed of the demo case (anatomy, activity and Poisson noise)."""

IY_ITERATIONS = 10
INPUT_KEY = "osem_rr_noisy"
RECONSTRUCTIONS = (INPUT_KEY, "osem_rr_noise_free")
"""What the demo simulates: the corrected input and its noise-free twin, whose match to the truth gives IY-PVC's
FWHM."""
METHOD_NAMES = {"No PVC": "spect_rr", "IY-PVC": "pvc_iy", "DL-PVC": "pvc_dl"}
"""Method name in the report -> file stem of its volume in the output folder."""


def _random_case(
    seed: int, grid: NetworkGrid, acquisition: simulation.Acquisition, device: str | None, progress: ProgressCallback
) -> dict[str, Any]:
    """A seed-003 case (:func:`DLPVCLib.dataset.simulate_pvc_case`) on ``grid``: images, regions and provenance."""
    if len(set(grid.size)) != 1 or len(set(grid.spacing_mm)) != 1:
        raise ValueError(f"model: the random case needs a cubic network grid, the model's is {grid}")
    case = simulate_pvc_case(
        seed, grid.size[0], grid.spacing_mm[0], acquisition, reconstructions=RECONSTRUCTIONS,
        device=resolve_device(device), progress=progress,
    )  # fmt: skip
    labels = case.images["masks"]
    count = int(sitk.GetArrayViewFromImage(labels).max())
    return {
        "truth": case.images["truth"],
        "ct": case.images["ct"],
        "spect": case.images,
        "labels": labels,
        "names": {label: f"region {label}" for label in range(1, count + 1)},
        "regions": "connected components of the true activity",
        "provenance": case.provenance,
    }


def _torso_case(
    seed: int, grid: NetworkGrid, acquisition: simulation.Acquisition, device: str | None, progress: ProgressCallback
) -> dict[str, Any]:
    """A 177Lu-PSMA torso phantom on ``grid`` with its SPECT: images, organ and lesion labels and provenance."""
    phantom = phantoms.make_torso(grid.size, grid.spacing_mm, seed=seed, tracer="PSMA")
    spect = simulation.simulate_spect(phantom.activity, phantom.ct, acquisition, seed=seed,
                                      reconstructions=RECONSTRUCTIONS, device=device, progress=progress)
    present = set(np.unique(sitk.GetArrayViewFromImage(phantom.labels)).tolist())
    names = {label: name for label, name in phantom.label_names.items() if label > 0 and label in present}
    return {
        "truth": phantom.activity,
        "ct": phantom.ct,
        "spect": spect,
        "labels": phantom.labels,
        "names": names,
        "regions": "organ and lesion labels",
        "provenance": phantom.provenance,
    }


_SIMULATORS = {"torso": _torso_case, "random": _random_case}
CASES = tuple(_SIMULATORS)
"""Kinds of demo case (see the module docstring); the first is the default."""


def run_demo(
    out_dir: str | Path,
    seed: int = DEMO_SEED,
    model_name: str = DEFAULT_MODEL,
    models_folder: str | Path | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
    case: str = CASES[0],
) -> dict[str, Any]:
    """Simulate a ``case`` (one of :data:`CASES`), correct it with DL-PVC and IY-PVC, write the report into ``out_dir``.

    Returns:
        ``{"metrics": rows of metrics.csv, "paths": {name: path written}, "provenance": {...}}``.

    Raises:
        ValueError: no model ``model_name`` installed (or its weights fail the hash check), a
            negative seed, an unknown case.
    """
    step = progress or no_progress
    check_seed(seed)
    if case not in CASES:
        raise ValueError(f"case: unknown {case!r}; choose one of {', '.join(CASES)}")
    started = time.perf_counter()
    step(0.0, f"Loading DL-PVC model {model_name}")
    model = load_dlpvc_model(model_name, models_folder, device)
    grid = model.grid
    step(0.02, f"Simulating a {case} case on the {'x'.join(map(str, grid.size))} grid of {grid.spacing_mm[0]:g} mm")
    acquisition = simulation.Acquisition()
    simulated = _SIMULATORS[case](seed, grid, acquisition, device, sub_progress(step, 0.05, 0.6))
    truth, rr = simulated["truth"], simulated["spect"][INPUT_KEY]
    labels, names = simulated["labels"], simulated["names"]
    step(0.6, "IY-PVC: matched-filter FWHM of the RR reconstruction")
    fwhm = matched_filter_fwhm(truth, simulated["spect"]["osem_rr_noise_free"], 2.0 * system_fwhm_mm(acquisition))
    iy = correct_iy(rr, labels, names, (fwhm,) * 3, IY_ITERATIONS, sub_progress(step, 0.62, 0.8))
    dl = correct_dl(rr, model, progress=sub_progress(step, 0.8, 0.9))
    estimates = {"No PVC": rr, "IY-PVC": iy, "DL-PVC": dl}
    provenance = {
        "command": f"deepdosimetry demo-pvc --case {case} --seed {seed} --model {model_name}",
        "deepdosimetry": DosimetryCore.__version__,
        "case": case,
        "seed": seed,
        "phantom": simulated["provenance"],
        "acquisition": asdict(acquisition),
        "input": INPUT_KEY,
        "model": {"name": model.name, "weights_sha256": model.card.get("weights_sha256")},
        "iy_pvc": {
            "iterations": IY_ITERATIONS,
            "fwhm_mm": fwhm,
            "fwhm_source": "matched filter, osem_rr_noise_free",
            "regions": simulated["regions"],
        },
        "total_activity_MBq": {name: total_activity_Bq(image) / BQ_PER_MBQ for name, image in estimates.items()},
    }
    step(0.9, "Writing metrics, figure and Slicer scene")
    paths = report.write_report(
        out_dir, truth, estimates, labels, names, extra_volumes={"CT": simulated["ct"]}, provenance=provenance,
        title=f"DL-PVC demo: {case} case, seed {seed}, model {model_name}",
    )  # fmt: skip
    out = Path(out_dir)
    volumes = {"truth": truth, "ct": simulated["ct"], "labels": labels} | {
        stem: estimates[method] for method, stem in METHOD_NAMES.items()
    }
    for stem, image in volumes.items():
        paths[stem] = io.write_image(image, out / f"{stem}.nrrd")
    rows = json.loads(paths["json"].read_text(encoding="utf-8"))["metrics"]
    provenance["wall_time_s"] = time.perf_counter() - started
    step(1.0, f"Demo written to {out}")
    return {"metrics": rows, "paths": paths, "provenance": provenance}
