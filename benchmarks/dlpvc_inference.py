"""Timing of DL-PVC inference: one full-field-of-view SPECT through DLPVCModel (seed 003's R2U-Net).

Usage: ``python benchmarks/dlpvc_inference.py [--size 128] [--arch r2unet] [--norm instance] [--repeats 3]
[--device cpu] [--model dlpvc-r2unet]``

Prints a table row per architecture: network parameters and the best of ``--repeats`` forward passes
(normalisation, network, activity rescaling) on a random non-negative ``size``^3 volume, without
gradients. The time does not depend on the weights, so an untrained network measures it.

With ``--model NAME`` it also times what a user waits for with an installed model:
:func:`DLPVCLib.correction.correct_dl` of a ``size``^3 SPECT of seed 003's 4.8 mm voxels (resampling
onto the model's network grid, the network, its gain resampled back with the total activity kept), once with
the mirror ensemble (the default: 8 passes) and once with ``mirror_ensemble=False`` (one pass).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import SimpleITK as sitk
import torch

from DLPVCLib.correction import correct_dl, load_dlpvc_model
from DLPVCLib.networks import ARCHITECTURES, DLPVCModel
from DosimetryCore.core.device import resolve_device


def seconds_per_volume(model: DLPVCModel, volume: torch.Tensor, repeats: int, device: torch.device) -> float:
    """Best wall time (s) of ``repeats`` forward passes of ``volume`` (1, 1, z, y, x)."""
    best = float("inf")
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            model(volume)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
    return best


def seconds_per_correction(
    name: str, size: int, repeats: int, device: torch.device, mirror_ensemble: bool
) -> tuple[float, str]:
    """Best wall time (s) of ``repeats`` DL-PVC corrections of a ``size``^3 SPECT at 4.8 mm with model ``name``."""
    model = load_dlpvc_model(name, device=device)
    generator = np.random.default_rng(0)
    spect = sitk.GetImageFromArray(generator.random((size,) * 3, dtype=np.float32) * 1e4)
    spect.SetSpacing((4.8, 4.8, 4.8))
    spect.SetOrigin((-2.4 * (size - 1),) * 3)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        correct_dl(spect, model, device=device, mirror_ensemble=mirror_ensemble)
        best = min(best, time.perf_counter() - start)
    grid = model.grid
    return best, f"{'x'.join(map(str, grid.size))} of {grid.spacing_mm[0]:g} mm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="voxels per axis of the SPECT (default 128)")
    parser.add_argument("--arch", choices=ARCHITECTURES, nargs="+", default=["r2unet"])
    parser.add_argument("--norm", default="instance", help="normalisation layers of the network")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="torch device (auto: cuda when available)")
    parser.add_argument("--model", default=None, help="also time correct_dl with this installed model")
    arguments = parser.parse_args()
    device = resolve_device(arguments.device)
    generator = torch.Generator().manual_seed(0)
    volume = torch.rand((1, 1, *(arguments.size,) * 3), generator=generator).to(device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"| {'architecture':<18} | {'size':>6} | {'parameters':>11} | {'seconds per volume':>18} |")
    print(f"|{'-' * 20}|{'-' * 8}|{'-' * 13}|{'-' * 20}|")
    for arch in arguments.arch:
        kwargs = {"norm": arguments.norm} if arch == "r2unet" else {}
        model = DLPVCModel(arch, **kwargs).to(device).eval()
        parameters = sum(p.numel() for p in model.parameters())
        seconds = seconds_per_volume(model, volume, arguments.repeats, device)
        size = f"{arguments.size}^3"
        print(f"| {arch:<18} | {size:>6} | {parameters:>11,} | {seconds:>18.2f} |")
    if arguments.model:
        case = f"a {arguments.size}^3 SPECT at 4.8 mm (best of {arguments.repeats})"
        print(f"\ncorrect_dl with {arguments.model} of {case}:")
        for mirror_ensemble, words in ((True, "mirror ensemble (8 passes)"), (False, "single pass")):
            seconds, grid = seconds_per_correction(
                arguments.model, arguments.size, arguments.repeats, device, mirror_ensemble
            )
            print(f"  {words}, network grid {grid}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
