"""Timing of the whole CNN dose rate (DoseRateCNNLib.cnn.cnn_dose_rate) of a 512 x 512 x 130 SPECT on Li et al.'s
CT grid (0.98 x 0.98 x 3 mm): resampling onto the model's grid, the VDK there, the network, resampling back.

Usage: ``python benchmarks/dose_cnn_pipeline.py [--model dose-cnn] [--threads 2]``

The activity is a synthetic torso (DosimetryCore.phantoms.make_torso) resampled onto the 512 x 512 x 130 grid.
Prints one table row per stage: seconds.
"""

from __future__ import annotations

import argparse
import time

import SimpleITK as sitk
import torch

from DoseRateCNNLib.cnn import DEFAULT_MODEL, cnn_dose_rate, load_dose_model
from DosimetryCore import dose
from DosimetryCore.core.volume import resample_to
from DosimetryCore.phantoms import make_torso

GRID_SIZE = (512, 512, 130)
GRID_SPACING_MM = (0.98, 0.98, 3.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    torso = make_torso((105, 75, 128), 4.8, seed=1, n_lesions=4)
    grid = sitk.Image(list(GRID_SIZE), sitk.sitkFloat32)
    grid.SetSpacing(GRID_SPACING_MM)
    grid.SetOrigin(tuple(-(n - 1) / 2.0 * s for n, s in zip(GRID_SIZE, GRID_SPACING_MM, strict=True)))
    activity = resample_to(torso.activity, grid, "linear")
    started = time.perf_counter()
    ct = dose.ct_on_activity_grid(torso.ct, activity)
    ct_seconds = time.perf_counter() - started
    model, card = load_dose_model(arguments.model, "cpu")
    stages = {}
    last = [time.perf_counter(), ""]

    def progress(fraction: float, message: str) -> None:
        now = time.perf_counter()
        if last[1]:
            stages[last[1]] = stages.get(last[1], 0.0) + now - last[0]
        last[:] = [now, message.split(" (")[0] if not message.startswith("VDK") else "VDK kernel and dose rate"]

    started = time.perf_counter()
    cnn_dose_rate(activity, ct, model, card, device="cpu", progress=progress)
    total = time.perf_counter() - started
    print(
        f"| {GRID_SIZE[0]} x {GRID_SIZE[1]} x {GRID_SIZE[2]} of 0.98 x 0.98 x 3 mm, {arguments.threads} threads | s |"
    )
    print("|---|---|")
    print(f"| CT onto the activity grid (before the call) | {ct_seconds:.1f} |")
    for stage, seconds in stages.items():
        print(f"| {stage} | {seconds:.1f} |")
    print(f"| **cnn_dose_rate in all** | **{total:.1f}** |")


if __name__ == "__main__":
    main()
