"""``deepdosimetry demo-pvc`` (``make demo``): one simulated patient-like case through both PVC methods.

The steps, each a library call used elsewhere in the project:

1. a synthetic torso (:func:`DosimetryCore.phantoms.make_torso`: CT, organ labelmap, 177Lu-PSMA
   activity with lesions) on the shipped DL-PVC model's network grid;
2. its SPECT (:func:`DosimetryCore.simulation.simulate_spect`: seed 003's 120 views x 30 s, MELP
   collimator, Poisson noise) reconstructed by OSEM with resolution recovery (``osem_rr_noisy``,
   the input DL-PVC was trained on);
3. DL-PVC (:func:`DLPVCLib.correction.correct_dl`, the hash-checked shipped model) and IY-PVC
   (:func:`DLPVCLib.correction.correct_iy`, 10 iterations, the phantom's organ and lesion labels
   as regions, the FWHM of the matched filter between the truth and the noise-free RR
   reconstruction, as :mod:`DLPVCLib.evaluation` finds it for the held-out table);
4. :func:`DosimetryCore.report.write_report`: ``metrics.csv`` (SSIM, NRMSE, VAA, AD and the
   recovery coefficient per segment, for no PVC, IY-PVC and DL-PVC), ``report.png`` (slices and a
   line profile: truth, no PVC, IY-PVC, DL-PVC, as seed 003 Fig. 4), ``report.mrb`` (a Slicer
   scene with every volume, the segmentation and the metrics table) and ``report.json``
   (metrics, units and provenance), plus each volume as NRRD.

The phantom is patient-like (organs with uptake, lesions), not one of the random shapes the
network was trained on, so it also shows how the model carries over to another kind of activity
distribution. Everything follows from ``--seed``: the same seed on the same machine gives the
same numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

import DosimetryCore
from DLPVCLib.correction import DEFAULT_MODEL, correct_dl, correct_iy, load_dlpvc_model, total_activity_bq
from DLPVCLib.evaluation import matched_filter_fwhm, system_fwhm_mm
from DosimetryCore import io, phantoms, report, simulation
from DosimetryCore.progress import ProgressCallback, no_progress, sub_progress, terminal_progress

DEMO_SEED = 2024
"""Default seed of the demo case (anatomy, activity and Poisson noise)."""

IY_ITERATIONS = 10
INPUT_KEY = "osem_rr_noisy"
METHOD_NAMES = {"No PVC": "spect_rr", "IY-PVC": "pvc_iy", "DL-PVC": "pvc_dl"}
"""Method name in the report -> file stem of its volume in the output folder."""


def run_demo(
    out_dir: str | Path,
    seed: int = DEMO_SEED,
    model_name: str = DEFAULT_MODEL,
    models_folder: str | Path | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Simulate a case, correct it with DL-PVC and IY-PVC and write the report into ``out_dir``.

    Returns:
        ``{"metrics": rows of metrics.csv, "paths": {name: path written}, "provenance": {...}}``.

    Raises:
        ValueError: no model ``model_name`` installed (or its weights fail the hash check), a
            negative seed.
    """
    step = progress or no_progress
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    started = time.perf_counter()
    step(0.0, f"Loading DL-PVC model {model_name}")
    model = load_dlpvc_model(model_name, models_folder, device)
    grid = model.grid
    step(0.02, f"Torso phantom on the {'x'.join(map(str, grid.size))} grid of {grid.spacing_mm[0]:g} mm")
    phantom = phantoms.make_torso(grid.size, grid.spacing_mm, seed=seed, tracer="PSMA")
    acquisition = simulation.Acquisition()
    spect = simulation.simulate_spect(
        phantom.activity, phantom.ct, acquisition, seed=seed, device=device, progress=sub_progress(step, 0.05, 0.6)
    )
    truth, rr = phantom.activity, spect[INPUT_KEY]
    step(0.6, "IY-PVC: matched-filter FWHM of the RR reconstruction")
    fwhm = matched_filter_fwhm(truth, spect["osem_rr_noise_free"], 2.0 * system_fwhm_mm(acquisition))
    present = set(np.unique(sitk.GetArrayViewFromImage(phantom.labels)).tolist())
    names = {label: name for label, name in phantom.label_names.items() if label > 0 and label in present}
    iy = correct_iy(rr, phantom.labels, names, (fwhm,) * 3, IY_ITERATIONS, sub_progress(step, 0.62, 0.8))
    dl = correct_dl(rr, model, progress=sub_progress(step, 0.8, 0.9))
    estimates = {"No PVC": rr, "IY-PVC": iy, "DL-PVC": dl}
    provenance = {
        "command": f"deepdosimetry demo-pvc --seed {seed} --model {model_name}",
        "deepdosimetry": DosimetryCore.__version__,
        "seed": seed,
        "phantom": phantom.provenance,
        "acquisition": asdict(acquisition),
        "input": INPUT_KEY,
        "model": {"name": model.name, "weights_sha256": model.card.get("weights_sha256")},
        "iy_pvc": {"iterations": IY_ITERATIONS, "fwhm_mm": fwhm, "fwhm_source": "matched filter, osem_rr_noise_free"},
        "total_activity_mbq": {name: total_activity_bq(image) / 1e6 for name, image in estimates.items()},
    }
    step(0.9, "Writing metrics, figure and Slicer scene")
    labels = phantom.labels
    paths = report.write_report(
        out_dir, truth, estimates, labels, names, extra_volumes={"CT": phantom.ct}, provenance=provenance
    )
    out = Path(out_dir)
    volumes = {"truth": truth, "ct": phantom.ct, "labels": labels} | {
        stem: estimates[method] for method, stem in METHOD_NAMES.items()
    }
    for stem, image in volumes.items():
        paths[stem] = io.write_image(image, out / f"{stem}.nrrd")
    rows = json.loads(paths["json"].read_text(encoding="utf-8"))["metrics"]
    provenance["wall_time_s"] = time.perf_counter() - started
    step(1.0, f"Demo written to {out}")
    return {"metrics": rows, "paths": paths, "provenance": provenance}


def _print_summary(result: dict[str, Any]) -> None:
    print(f"{'method':<8} {'SSIM':>6} {'NRMSE %':>8} {'VAA %':>6} {'AD %':>6}")
    for row in result["metrics"]:
        print(
            f"{row['method']:<8} {row['SSIM']:6.3f} {100 * row['NRMSE']:8.2f} {100 * row['VAA']:6.1f} {row['AD']:6.2f}"
        )
    provenance = result["provenance"]
    print(
        f"model {provenance['model']['name']} (sha256 {str(provenance['model']['weights_sha256'])[:12]}), "
        f"IY-PVC FWHM {provenance['iy_pvc']['fwhm_mm']:.2f} mm, seed {provenance['seed']}, "
        f"{provenance['wall_time_s']:.0f} s"
    )
    print("wrote " + ", ".join(str(path) for path in result["paths"].values()))


def _run_demo(arguments: argparse.Namespace) -> int:
    result = run_demo(
        arguments.out, arguments.seed, arguments.model, arguments.models_dir, arguments.device, terminal_progress()
    )
    _print_summary(result)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo-pvc`` (entry-point group ``deepdosimetry.commands``) to the ``deepdosimetry`` command."""
    command = subparsers.add_parser(
        "demo-pvc", help="simulate a torso case, apply DL-PVC and IY-PVC, write metrics, figure and Slicer scene"
    )
    command.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    command.add_argument("--seed", type=int, default=DEMO_SEED, help=f"case seed (default {DEMO_SEED})")
    command.add_argument("--model", default=DEFAULT_MODEL, help=f"DL-PVC model (default {DEFAULT_MODEL})")
    command.add_argument("--models-dir", default=None, help="model folder (default Resources/Models)")
    command.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    command.set_defaults(handler=_run_demo)

