"""Timing of the SPECT projector (DosimetryCore.imaging.projection): forward, back and both, with and without
attenuation and collimator response.

Usage: ``python benchmarks/projection.py [--size 128] [--views 120] [--repeats 3] [--device auto]``

On a machine with CUDA it first prints the largest relative difference between CPU and CUDA
forward and back projections of the same small problem (they must agree to about 1e-4).

Prints one table row per operation: the best of ``--repeats`` runs with the projector's cache (per-view
rotation operators and attenuation weights) built; ``set-up + first forward`` is the time to build a
projector and run its first forward projection, which fills the cache. Other processes loading the
machine inflate the times; the best of several runs is the fairest figure.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from DosimetryCore.core.device import resolve_device
from DosimetryCore.imaging.collimators import collimator_response
from DosimetryCore.imaging.projection import SpectProjector

MU_WATER_208KEV_PER_CM = 0.1355  # NIST XCOM, water at 208 keV


def _phantom(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A water cylinder of 80 % of the field of view with uniform activity: (activity, mu in 1/cm)."""
    offsets = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(offsets, offsets, indexing="ij")
    inside = (xx**2 + yy**2 <= (0.4 * size) ** 2).expand(size, size, size)
    return inside.float(), torch.where(inside, MU_WATER_208KEV_PER_CM, 0.0)


def _seconds(operation: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    operation()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def cuda_cpu_difference() -> tuple[float, float]:
    """Largest relative difference of CUDA vs CPU (forward, back) on a 16 x 24 x 24 problem, 12 views."""
    shape, spacing = (16, 24, 24), (4.0, 4.0, 4.0)
    mu = torch.full(shape, MU_WATER_208KEV_PER_CM)
    activity = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    arguments = (shape, spacing, np.arange(12) * 30.0, 150.0, mu, collimator_response("SIEMENS-MELP"))
    cpu = SpectProjector(*arguments, device="cpu")
    cuda = SpectProjector(*arguments, device="cuda")
    projections = cpu.forward(activity)
    back = cpu.back(projections)
    forward_error = (cuda.forward(activity).cpu() - projections).abs().max() / projections.abs().max()
    back_error = (cuda.back(projections).cpu() - back).abs().max() / back.abs().max()
    return float(forward_error), float(back_error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="volume size (size^3 voxels of 4.8 mm)")
    parser.add_argument("--views", type=int, default=120, help="number of views over 360 degrees")
    parser.add_argument("--repeats", type=int, default=3, help="runs per operation (the best is reported)")
    parser.add_argument("--device", default="auto", help="torch device (auto: cuda when available)")
    arguments = parser.parse_args()
    device = resolve_device(arguments.device)
    size, views, repeats = arguments.size, arguments.views, arguments.repeats
    activity, mu = _phantom(size, device)
    angles = np.arange(views) * 360.0 / views
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if torch.cuda.is_available():
        forward_error, back_error = cuda_cpu_difference()
        print(f"CUDA vs CPU max relative difference: forward {forward_error:.2e}, back {back_error:.2e}")
    print(f"{'operation':<58} {'size':>6} {'views':>6} {'seconds':>8} {'best of':>8}")
    for attenuation in (False, True):
        for collimator in (False, True):
            label = f"attenuation {'yes' if attenuation else 'no'}, collimator {'yes' if collimator else 'no'}"

            def build(attenuation: bool = attenuation, collimator: bool = collimator) -> SpectProjector:
                projector = SpectProjector(
                    (size,) * 3,
                    (4.8,) * 3,
                    angles,
                    radius_mm=0.5 * 4.8 * size + 20.0,
                    mu_per_cm=mu if attenuation else None,
                    response=collimator_response("SIEMENS-MELP") if collimator else None,
                    device=device,
                )
                projector.forward(activity)
                return projector

            projector = build()
            projections = projector.forward(activity)
            rows = {
                "set-up + first forward": (build, 1),
                "forward": (lambda p=projector: p.forward(activity), repeats),
                "back": (lambda p=projector, q=projections: p.back(q), repeats),
                "forward + back": (lambda p=projector: p.back(p.forward(activity)), repeats),
            }
            for name, (operation, runs) in rows.items():
                best = min(_seconds(operation, device) for _ in range(runs))
                print(f"{name + ' (' + label + ')':<58} {f'{size}^3':>6} {views:>6} {best:>8.3f} {runs:>8}")


if __name__ == "__main__":
    main()
