"""Capacity check of a DL-PVC model: can it fit a few training cases better than IY-PVC corrects them?

Usage::

    python benchmarks/dlpvc_capacity.py --data data/pvc64 [--model dlpvc-r2unet] [--cases 8]
        [--seconds 1200] [--every 80] [--lr 5e-4] [--loss l1] [--iy-fwhm-mm 15.25] [--seed 0]

Fine-tunes the installed model ``--model`` (its weights are read, never written) with Adam at a
constant ``--lr`` on the first ``--cases`` cases of the training split, one case a step in a fixed
order, for about ``--seconds`` of wall time. Every ``--every`` steps it prints a table row of the
mean SSIM, NRMSE and VAA (seed 003's metrics, as ``evaluate-pvc`` computes them) of DL-PVC on those
same cases; first come the rows of no PVC and of IY-PVC (ground-truth regions) on them.

This measures what the network can represent, not what it generalises to: if DL-PVC on a handful
of memorised cases rises above IY-PVC, the architecture and the activity conservation are not what
keeps the held-out SSIM below IY-PVC, and the remedy is more training on more data. Compare with
``deepdosimetry evaluate-pvc --split train``: a model whose training-split metrics equal its
held-out ones is under-fitted, not over-fitted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import SimpleITK as sitk
import torch

from DLPVCLib.correction import load_dlpvc_model
from DLPVCLib.dataset import PVCDataset
from DLPVCLib.evaluation import IY_ITERATIONS, case_metrics
from DLPVCLib.iterative_yang import iterative_yang
from DLPVCLib.train import LOSSES, normalised_loss
from DosimetryCore.core.device import resolve_device

METRICS = ("ssim", "nrmse_percent", "vaa_percent")


def mean_metrics(estimates: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """Mean of :data:`METRICS` over cases; arrays (z, y, x) in Bq/mL."""
    rows = [case_metrics(estimate.astype(np.float64), truth) for estimate, truth in zip(estimates, truths, strict=True)]
    return {key: float(np.mean([row[key] for row in rows])) for key in METRICS}


def table_row(label: str, values: dict[str, float]) -> str:
    """One markdown table row: label, SSIM, NRMSE (%), VAA (%)."""
    return f"| {label} | {values['ssim']:.4f} | {values['nrmse_percent']:.2f} | {values['vaa_percent']:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder written by simulate-pvc")
    parser.add_argument("--model", default="dlpvc-r2unet", help="installed DL-PVC model to start from")
    parser.add_argument("--cases", type=int, default=8, help="training cases to fit (the split's first)")
    parser.add_argument("--seconds", type=float, default=1200.0, help="wall time of the fit, checked per pass")
    parser.add_argument("--every", type=int, default=80, help="steps between table rows")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--loss", default="l1", choices=list(LOSSES))
    parser.add_argument("--iy-fwhm-mm", type=float, default=None, help="IY-PVC FWHM (default: the model card's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    arguments = parser.parse_args()
    if arguments.cases < 1 or arguments.every < 1:
        parser.error("--cases and --every must be at least 1")

    torch.manual_seed(arguments.seed)
    device = resolve_device(arguments.device)
    trained = load_dlpvc_model(arguments.model, device=device)
    model, card = trained.network, trained.card
    data = PVCDataset(arguments.data, "train", card.get("input", "osem_rr_noisy"))
    if arguments.cases > len(data):
        parser.error(f"--cases {arguments.cases}: the training split has {len(data)}")
    fwhm = arguments.iy_fwhm_mm or card.get("evaluation", {}).get("iy_fwhm_mm")
    if not fwhm:
        parser.error(f"--iy-fwhm-mm: the card of {arguments.model} records none; give one")
    pairs = [data[index] for index in range(arguments.cases)]
    truths = [target[0].numpy().astype(np.float64) for _, target in pairs]
    iy = [
        sitk.GetArrayFromImage(
            iterative_yang(data.image(i, data.input_key), data.image(i, "masks"), (fwhm,) * 3, IY_ITERATIONS)
        )
        for i in range(arguments.cases)
    ]

    def dl_metrics() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            outputs = [model(x[None].to(device))[0, 0].cpu().numpy() for x, _ in pairs]
        model.train()
        return mean_metrics(outputs, truths)

    print(f"{arguments.model} on the first {arguments.cases} training cases of {arguments.data}")
    print(f"Adam lr {arguments.lr:g}, loss {arguments.loss}, seed {arguments.seed}, device {device}")
    print("\n| method (step, s) | SSIM | NRMSE (%) | VAA (%) |\n|---|---|---|---|")
    print(table_row("None", mean_metrics([x[0].numpy() for x, _ in pairs], truths)))
    print(table_row(f"IY-PVC ({fwhm:.2f} mm)", mean_metrics(iy, truths)))
    print(table_row("DL-PVC (0, 0)", dl_metrics()), flush=True)
    loss_function = normalised_loss(arguments.loss)
    optimiser = torch.optim.Adam(model.parameters(), lr=arguments.lr)
    model.train()
    started, step = time.perf_counter(), 0
    while time.perf_counter() - started < arguments.seconds:
        for x, target in pairs:
            loss = loss_function(model(x[None].to(device)), target[None].to(device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            if step % arguments.every == 0:
                print(table_row(f"DL-PVC ({step}, {time.perf_counter() - started:.0f})", dl_metrics()), flush=True)
    if step % arguments.every:
        print(table_row(f"DL-PVC ({step}, {time.perf_counter() - started:.0f})", dl_metrics()))


if __name__ == "__main__":
    main()
