"""Timing of DL-PVC inference: one full-field-of-view SPECT through DLPVCModel (seed 003's R2U-Net).

Usage: ``python benchmarks/dlpvc_inference.py [--size 128] [--arch r2unet] [--norm instance] [--repeats 3]
[--device cpu]``

Prints a table row per architecture: network parameters and the best of ``--repeats`` forward passes
(normalisation, network, activity rescaling) on a random non-negative ``size``^3 volume, without
gradients. The time does not depend on the weights, so an untrained network measures it.
"""

from __future__ import annotations

import argparse
import time

import torch

from DLPVCLib.networks import ARCHITECTURES, DLPVCModel
from DosimetryCore.device import resolve_device


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="voxels per axis of the SPECT (default 128)")
    parser.add_argument("--arch", choices=ARCHITECTURES, nargs="+", default=["r2unet"])
    parser.add_argument("--norm", default="instance", help="normalisation layers of the network")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="torch device (auto: cuda when available)")
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


if __name__ == "__main__":
    main()
