"""Sub-commands ``kernel`` and ``dose-rate`` of the ``deepdosimetry`` command."""

from __future__ import annotations

import argparse

from DosimetryCore import io
from DosimetryCore.core.device import resolve_device


def _run_kernel(arguments: argparse.Namespace) -> int:
    from DosimetryCore import dose
    from DosimetryCore.core.progress import terminal_progress

    if len(arguments.voxel_mm) not in (1, 3):
        raise ValueError(f"--voxel-mm: give one size or three (x y z) in mm, got {len(arguments.voxel_mm)}")
    spacing_xyz = arguments.voxel_mm * 3 if len(arguments.voxel_mm) == 1 else arguments.voxel_mm
    kernel = dose.voxel_kernel(
        tuple(reversed(spacing_xyz)),
        nuclide=arguments.nuclide,
        beta_size=arguments.beta_size,
        photon_size=arguments.photon_size,
        photon_histories=arguments.histories,
        seed=arguments.seed,
        device=resolve_device(arguments.device),
        progress=terminal_progress(),
    )
    path = io.write_image(dose.kernel_image(kernel), arguments.output)
    photon = kernel.provenance["photon"]
    print(
        f"{path}: {dose.KERNEL_UNIT}, beta {kernel.beta.shape[::-1]} + photon {kernel.photon.shape[::-1]} voxels "
        f"(x, y, z) of {' x '.join(f'{s:g}' for s in spacing_xyz)} mm; {photon['histories']} photon histories, "
        f"centre-voxel photon uncertainty {100 * photon['relative_uncertainty_centre']:.2f} %"
    )
    return 0


def _run_dose_rate(arguments: argparse.Namespace) -> int:
    from DosimetryCore import dose
    from DosimetryCore.core.progress import terminal_progress

    if arguments.table and not arguments.seg:
        raise ValueError("--table: needs --seg (the labelmap whose segments the table lists)")
    activity, ct = io.read_image(arguments.activity), io.read_image(arguments.ct)
    labelmap = io.read_image(arguments.seg) if arguments.seg else None
    result = dose.compute_dose_rate(
        activity,
        ct,
        arguments.method,
        nuclide=arguments.nuclide,
        include_photons=arguments.led_photons,
        photon_histories=arguments.histories,
        batches=arguments.batches,
        seed=arguments.seed,
        electron_transport=arguments.electrons,
        device=resolve_device(arguments.device),
        progress=terminal_progress(),
    )
    rows = dose.segment_table(result.image, labelmap) if labelmap is not None else []
    path = io.write_image(result.image, arguments.output)
    print(f"{path}: dose rate ({dose.DOSE_RATE_UNIT}) by {arguments.method}")
    if arguments.uncertainty and result.relative_uncertainty is not None:
        print(f"{io.write_image(result.relative_uncertainty, arguments.uncertainty)}: relative uncertainty")
    for row in rows:
        print(f"  {row['segment']}: mean {row['mean']:.4g}, max {row['max']:.4g} {dose.DOSE_RATE_UNIT}")
    if arguments.table:
        print(f"{dose.write_table_csv(rows, arguments.table)}: per-segment table")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    kernel = subparsers.add_parser("kernel", help="voxel S-value kernel (beta + photon) in mGy/(MBq*s), soft tissue")
    kernel.add_argument("--voxel-mm", type=float, nargs="+", required=True, metavar="MM", help="voxel size: X [Y Z]")
    kernel.add_argument("--output", required=True, help="kernel image file (e.g. K.nrrd)")
    kernel.add_argument("--nuclide", default="Lu-177")
    kernel.add_argument("--beta-size", type=int, default=9, help="beta kernel size in voxels (odd; default 9)")
    kernel.add_argument("--photon-size", type=int, default=99, help="photon kernel size in voxels (odd; default 99)")
    kernel.add_argument("--histories", type=int, default=10_000_000, help="photon histories (default 1e7)")
    kernel.add_argument("--seed", type=int, default=177)
    kernel.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    kernel.set_defaults(handler=_run_kernel)

    rate = subparsers.add_parser("dose-rate", help="absorbed dose-rate map (Gy/h) from activity (Bq/mL) and CT (HU)")
    rate.add_argument("--activity", required=True, help="activity concentration image (Bq/mL)")
    rate.add_argument("--ct", required=True, help="CT image (HU) on the activity's grid")
    rate.add_argument("--method", choices=("vdk", "led", "mc"), default="vdk")
    rate.add_argument("--output", required=True, help="dose-rate image file (Gy/h)")
    rate.add_argument("--seg", help="labelmap image of the segments for the table")
    rate.add_argument("--table", help="per-segment table (CSV) of mean, max and D2/50/98%% dose rates")
    rate.add_argument("--uncertainty", help="mc: relative-uncertainty image file")
    rate.add_argument("--nuclide", default="Lu-177")
    rate.add_argument("--led-photons", action="store_true", help="led: deposit photon energy locally too")
    rate.add_argument("--histories", type=int, default=1_000_000, help="mc: photon histories (default 1e6)")
    rate.add_argument("--batches", type=int, default=10, help="mc: batches for the uncertainty (default 10)")
    rate.add_argument("--seed", type=int, default=177, help="mc: random seed")
    rate.add_argument("--electrons", choices=("kernel", "local"), default="kernel", help="mc: electron energy")
    rate.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    rate.set_defaults(handler=_run_dose_rate)
