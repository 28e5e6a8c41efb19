"""Timing of the dose-rate methods (DosimetryCore.dose): VDK convolution, local deposition, Monte Carlo.

Usage: ``python benchmarks/dose.py [--threads 2] [--repeats 3] [--histories 1000000] [--device cpu]``

- VDK on the seed-002 geometry: 512 x 512 x 130 voxels of 0.98 x 0.98 x 3 mm (float32) with the combined
  beta 9^3 + photon 99^3 kernel of that voxel size (taken from Resources/Kernels, generated there once if
  missing). Times are the best of ``--repeats`` runs, kernel FFT included (nothing is cached between calls).
  The float32 result is compared with a float64 run of the same convolution (numerical error only: the
  method has no resolution approximation).
- LED on the same grid.
- Monte Carlo: photon histories per second on a 128 x 128 x 100 phantom of 4 mm voxels (body, lungs, spine,
  liver, kidneys, lesions), and in the infinite homogeneous medium used for kernel generation.

Other processes on the machine inflate the times; with few cores torch's element-wise kernels suffer most
(``--threads 1`` can then be faster for the Monte Carlo).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from DosimetryCore.core.device import resolve_device
from DosimetryCore.dose import kernels, mc_dose_rate, montecarlo, vdk
from DosimetryCore.physics.tissue import density_g_per_cm3_from_hu

SEED_002_SPACING_MM = (3.0, 0.98, 0.98)  # (z, y, x)
SEED_002_SHAPE = (130, 512, 512)


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True)) <= 1.0


def phantom(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(activity Bq/mL, CT HU) of a torso: soft-tissue body, lungs, spine, liver, kidneys and three lesions."""
    nz, ny, nx = shape
    scale = [n * s for n, s in zip(shape, spacing_mm, strict=True)]

    def region(centre_fraction, radii_mm):
        centre = [f * n for f, n in zip(centre_fraction, shape, strict=True)]
        radii = [r / s for r, s in zip(radii_mm, spacing_mm, strict=True)]
        return _ellipsoid(shape, centre, radii)

    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = region((0.5, 0.5, 0.5), (scale[0], 0.36 * scale[1], 0.45 * scale[2]))
    hu[body] = 40.0
    for side in (0.3, 0.7):
        hu[region((0.25, 0.5, side), (0.3 * scale[0], 0.25 * scale[1], 0.13 * scale[2]))] = -800.0
    hu[region((0.5, 0.75, 0.5), (scale[0], 0.05 * scale[1], 0.05 * scale[2]))] = 700.0
    activity = np.where(body, 3.0e3, 0.0).astype(np.float32)
    activity[region((0.6, 0.45, 0.35), (0.25 * scale[0], 0.2 * scale[1], 0.15 * scale[2]))] = 2.0e4  # liver
    for side in (0.3, 0.7):
        activity[region((0.75, 0.65, side), (40.0, 35.0, 25.0))] = 6.0e4  # kidneys
    for centre in ((0.55, 0.4, 0.4), (0.6, 0.5, 0.6), (0.3, 0.4, 0.5)):
        activity[region(centre, (15.0, 15.0, 15.0))] = 2.0e5  # lesions
    return activity, hu


def _best(operation, repeats: int, device: torch.device) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = operation()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def benchmark_vdk(repeats: int, device: torch.device) -> list[tuple[str, str]]:
    kernel = kernels.voxel_kernel(SEED_002_SPACING_MM, device=device)
    activity, hu = phantom(SEED_002_SHAPE, SEED_002_SPACING_MM)
    density = density_g_per_cm3_from_hu(hu)
    seconds, dose = _best(
        lambda: vdk.vdk_dose_rate(activity, density, kernel, SEED_002_SPACING_MM, device=device), repeats, device
    )
    reference = vdk.vdk_dose_rate(activity, density, kernel, SEED_002_SPACING_MM, device=device)
    double = _float64_vdk(activity, density, kernel, device)
    difference = (dose.double() - double).abs()
    tissue = torch.as_tensor(density >= 0.9, device=device) & (double > 0.01 * double.max())
    error_tissue = float((difference[tissue] / double[tissue]).max())
    error_max = float(difference.max() / double.max())
    led_seconds, _ = _best(lambda: vdk.led_dose_rate(activity, density, device=device), repeats, device)
    return [
        ("VDK 512x512x130, beta 9^3 + photon 99^3, float32", f"{seconds:.2f} s"),
        ("VDK float32 vs float64: max |difference| / max dose", f"{error_max:.1e}"),
        ("VDK float32 vs float64: max relative difference, tissue voxels > 1 % of max", f"{error_tissue:.1e}"),
        ("VDK repeat identical", str(bool(torch.equal(reference, dose)))),
        ("LED 512x512x130", f"{led_seconds:.2f} s"),
    ]


def _float64_vdk(activity, density, kernel, device) -> torch.Tensor:
    from DosimetryCore.dose.convolution import fft_convolve

    voxel_ml = math.prod(SEED_002_SPACING_MM) / 1000.0
    activity_MBq = torch.as_tensor(activity, dtype=torch.float64, device=device) * voxel_ml / 1e6
    total = torch.as_tensor(kernel.total(), dtype=torch.float64, device=device)
    mGy_per_s = torch.clamp(fft_convolve(activity_MBq, total), min=0.0)
    density = torch.as_tensor(density, dtype=torch.float64, device=device)
    return mGy_per_s * 3.6 * kernels.KERNEL_DENSITY_G_PER_CM3 / density


def benchmark_monte_carlo(histories: int, device: torch.device) -> list[tuple[str, str]]:
    spacing = (4.0, 4.0, 4.0)
    activity, hu = phantom((100, 128, 128), spacing)
    medium = montecarlo.medium_from_hu(hu, spacing, device)
    result = mc_dose_rate.simulate_dose_rate(activity, medium, photon_histories=histories, device=device)
    lesions = torch.as_tensor(activity == activity.max(), device=device)
    lesion = float(result.relative_uncertainty[lesions].median())
    energy = result.energy
    closure = (energy.deposited_MeV + energy.escaped_MeV) / energy.emitted_MeV - 1
    start = time.perf_counter()
    kernels.photon_kernel((4.8, 4.8, 4.8), 99, photon_histories=histories // 2, device=device)
    kernel_seconds = time.perf_counter() - start
    rate = result.photon_histories / result.seconds
    return [
        (f"MC phantom 128x128x100 (4 mm), {result.photon_histories:.0e} photons", f"{result.seconds:.1f} s"),
        ("MC photon histories per second (phantom, incl. set-up and electrons)", f"{rate:,.0f}"),
        ("MC median relative uncertainty in lesion voxels", f"{100 * lesion:.2f} %"),
        ("MC energy closure (deposited + escaped) / emitted - 1", f"{closure:.1e}"),
        ("MC photon histories per second (kernel, infinite medium)", f"{(histories // 2) / kernel_seconds:,.0f}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--histories", type=int, default=1_000_000)
    parser.add_argument("--device", default="cpu")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    device = resolve_device(arguments.device)
    rows = benchmark_vdk(arguments.repeats, device) + benchmark_monte_carlo(arguments.histories, device)
    width = max(len(name) for name, _ in rows)
    print(f"device {device}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"| {'operation'.ljust(width)} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
