"""``deepdosimetry demo-dose`` (``make demo``): one virtual patient through VDK, Monte Carlo on SPECT and the CNN.

The steps, each a library call used elsewhere in the project:

1. one case as the training and held-out cases are made (:func:`DoseRateCNNLib.data.simulate_dose_case` on the
   shipped model's grid): a virtual patient, the Monte Carlo dose rate of its TRUE activity (the reference), its
   SPECT at one of Li et al.'s count levels (OSEM-RR 16 x 4) and the Monte Carlo and VDK dose rates of that SPECT;
2. the CNN dose rate of the SPECT (:func:`DoseRateCNNLib.cnn.network_dose_rate`, the hash-checked shipped model);
3. :func:`DosimetryCore.evaluation.report.write_report`: ``report.png`` (slices through the hottest lesion and a
   line profile, as Li et al.'s Fig. 4), ``metrics.csv``, ``report.mrb`` (a Slicer scene with every volume, the
   segmentation and the table), ``report.json``; and ``regions.csv`` / ``regions.md``: Li et al.'s per-region mean
   dose error and NRMSE of each method against the reference.

The seed (default :data:`DEMO_SEED`, none of the training or held-out case seeds, which are 32-bit children of
their dataset seeds) fixes everything: the same seed on the same machine gives the same numbers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.progress import ProgressCallback, no_progress, sub_progress
from DosimetryCore.core.units import DOSE_RATE_UNIT
from DosimetryCore.evaluation import report
from DosimetryCore.io.tables import write_csv, write_markdown

from .cnn import DEFAULT_MODEL, load_dose_model, network_dose_rate
from .data import DoseCaseSettings, case_image, simulate_dose_case
from .evaluation import region_errors, region_masks

DEMO_SEED = 2022
DEFAULT_COUNT_LEVEL = 5.5e6
"""Total counts of the demo's SPECT: the second of Li et al.'s levels."""


def _region_rows(truth: np.ndarray, estimates: dict[str, np.ndarray], labels: np.ndarray, names: dict) -> list[dict]:
    rows = []
    for region, masks in region_masks(labels, names).items():
        for index, mask in enumerate(masks):
            row: dict[str, Any] = {"region": region if len(masks) == 1 else f"{region} {index + 1}"}
            row["reference_mean_Gy_per_h"] = float(truth[mask].mean())
            for method, estimate in estimates.items():
                mde, nrmse = region_errors(estimate, truth, mask)
                row[f"{method} MDE %"], row[f"{method} NRMSE %"] = mde, nrmse
            rows.append(row)
    return rows


def run_demo(
    out_dir: str | Path,
    *,
    seed: int = DEMO_SEED,
    total_counts: float = DEFAULT_COUNT_LEVEL,
    model_name: str = DEFAULT_MODEL,
    models_dir: str | Path | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out_dir`` with the installed model ``model_name`` (from ``models_dir``, default the
    resources' Models); returns the per-region rows, the paths written and the provenance."""
    report_progress = progress or no_progress
    started = time.perf_counter()
    device_name = str(resolve_device(device))
    model, card = load_dose_model(model_name, device_name, models_dir)
    spacing = float(card["training_domain"]["dose_spacing_mm"])
    settings = DoseCaseSettings(
        dose_spacing_mm=spacing, spect_spacing_mm=spacing, count_levels=(float(total_counts),), mc_on_spect=True
    )
    arrays, record = simulate_dose_case(
        seed, settings, device=device_name, progress=sub_progress(report_progress, 0, 0.8)
    )
    report_progress(0.8, "CNN dose rate")
    voxel_ml = spacing**3 / 1000.0
    cnn = network_dose_rate(model, arrays["spect_0"], arrays["hu"], arrays["vdk_0"], voxel_ml, device_name)
    estimates = {"VDK": arrays["vdk_0"], "MC on SPECT": arrays["mcspect_0"], "CNN": cnn}
    names = record["label_names"]
    rows = _region_rows(arrays["mc"], estimates, arrays["labels"], names)
    report_progress(0.85, "Writing the report")

    def dose_image(values: np.ndarray):
        return case_image(values, spacing, DOSE_RATE_UNIT, "absorbed dose rate")

    truth = dose_image(arrays["mc"])
    labelmap = case_image(arrays["labels"].astype(np.uint8), spacing, "label", "labels")
    lesions = np.isin(arrays["labels"], [int(k) for k, v in names.items() if v.startswith("lesion_")])
    hottest = (
        np.unravel_index(np.argmax(np.where(lesions, arrays["mc"], 0.0)), lesions.shape) if lesions.any() else None
    )
    provenance = {
        "command": "deepdosimetry demo-dose",
        "seed": seed,
        "case": record,
        "model": card["name"],
        "model_sha256": card["weights_sha256"],
        "reference": "Monte Carlo dose rate of the true activity",
        "device": device_name,
    }
    out_dir = Path(out_dir)
    paths = report.write_report(
        out_dir,
        truth,
        {name: dose_image(values) for name, values in estimates.items()},
        labelmap,
        {int(k): v for k, v in names.items()},
        extra_volumes={
            "true activity": case_image(arrays["activity"], spacing, "Bq/mL", "activity concentration"),
            "SPECT": case_image(arrays["spect_0"], spacing, "Bq/mL", "activity concentration"),
            "CT": case_image(arrays["hu"], spacing, "HU", "CT number"),
        },
        provenance=provenance,
        title=f"demo-dose seed {seed}: {record['sampled']['tracer']}, SPECT of {total_counts:.3g} counts; reference "
        "= Monte Carlo of the true activity",
        slice_index=hottest,
    )
    paths["regions"] = write_csv(rows, out_dir / "regions.csv")
    header = ["region", "reference_mean_Gy_per_h", *(k for k in rows[0] if k.endswith("%"))]
    paths["regions_md"] = write_markdown(rows, out_dir / "regions.md", header)
    (out_dir / "demo.json").write_text(json.dumps({"rows": rows, "provenance": provenance}, indent=2) + "\n")
    report_progress(1.0, f"demo done in {time.perf_counter() - started:.0f} s")
    return {"rows": rows, "paths": paths, "provenance": provenance, "wall_time_s": time.perf_counter() - started}
