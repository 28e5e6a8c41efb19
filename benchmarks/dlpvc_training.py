"""Timing of the DL-PVC pipeline end to end: simulate a dataset, train a few epochs, evaluate the test split.

Usage::

    python benchmarks/dlpvc_training.py --out /tmp/dlpvc-bench [--n 40] [--seed 3] [--size 64]
        [--spacing-mm 9.6] [--views 60] [--epochs 3] [--batch-size 2] [--channels 16 32 64 128]
        [--workers 1] [--device auto]

Runs the library functions behind ``simulate-pvc``, ``train dlpvc`` and ``evaluate-pvc`` on one
dataset under ``--out`` (resumed if it exists; the checkpoint folder must be new) and prints
seconds per simulated case, per training epoch and per evaluated case, then the evaluation table.
A few epochs train no useful model: this checks that the pipeline runs on a machine and gives the
numbers to plan a real run (seed 003: 128^3 at 4.8 mm, 120 views). The torso phantom needs a field
of view of about 500 x 360 x 610 mm, so size x spacing must reach 610 mm (64 x 9.6, 128 x 4.8).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from DLPVCLib import dataset, evaluation, train
from DosimetryCore.core.progress import terminal_progress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the dataset, checkpoints and table")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--spacing-mm", type=float, default=9.6)
    parser.add_argument("--views", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--channels", type=int, nargs="+", default=None)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default=None)
    arguments = parser.parse_args()
    out = Path(arguments.out)

    started = time.perf_counter()
    written = dataset.write_dataset(
        out / "data",
        arguments.n,
        arguments.seed,
        arguments.size,
        arguments.spacing_mm,
        replace(dataset.DEFAULT_ACQUISITION, views=arguments.views),
        workers=arguments.workers,
        device=arguments.device,
        progress=terminal_progress(),
    )
    simulation_s = time.perf_counter() - started
    run = train.train_dlpvc(
        out / "data",
        out / "run",
        channels=arguments.channels,
        epochs=arguments.epochs,
        batch_size=arguments.batch_size,
        device=arguments.device,
        command="benchmarks/dlpvc_training.py",
        progress=terminal_progress(),
    )
    started = time.perf_counter()
    result = evaluation.evaluate(run.model, out / "data", device=arguments.device, progress=terminal_progress())
    evaluation_s = time.perf_counter() - started
    paths = evaluation.write_table(result, out / "evaluation.csv", title="DL-PVC pipeline benchmark (few epochs)")

    counts = written.manifest["split_counts"]
    per_case = list(written.simulated.values())
    epochs = [entry["wall_time_s"] for entry in run.result.history]
    print(f"hardware: {run.summary['hardware']}")
    print(f"grid {arguments.size}^3 x {arguments.spacing_mm:g} mm, {arguments.views} views; splits {counts}")
    if per_case:
        print(
            f"simulation: {len(per_case)} case(s), {np.mean(per_case):.1f} s per case (min {min(per_case):.1f}, "
            f"max {max(per_case):.1f}; wall {simulation_s:.0f} s with {arguments.workers} worker(s))"
        )
    print(
        f"training: {run.summary['model']['parameters']} parameters, {np.mean(epochs):.1f} s per epoch "
        f"({np.mean(epochs) / counts['train']:.2f} s per training case incl. validation), epochs {epochs}"
    )
    print(f"evaluation: {evaluation_s / result.settings['n_cases']:.1f} s per test case (IY-PVC calibration included)")
    print(paths[1].read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
