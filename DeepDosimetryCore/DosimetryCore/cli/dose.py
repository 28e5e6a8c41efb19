"""Sub-command ``kernel`` of the ``deepdosimetry`` command (``dose-rate`` is DoseRateCNN's)."""

from __future__ import annotations

import argparse

from DosimetryCore import io
from DosimetryCore.core.device import resolve_device
from DosimetryCore.io.outputs import check_outputs


def _run_kernel(arguments: argparse.Namespace) -> int:
    from DosimetryCore import dose
    from DosimetryCore.core.progress import terminal_progress

    if len(arguments.voxel_mm) not in (1, 3):
        raise ValueError(f"--voxel-mm: give one size or three (x y z) in mm, got {len(arguments.voxel_mm)}")
    check_outputs({}, {"--output": arguments.output})
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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kernel`` to the ``deepdosimetry`` command."""
    kernel = subparsers.add_parser("kernel", help="voxel S-value kernel (beta + photon) in mGy/(MBq*s), soft tissue")
    kernel.add_argument(
        "--voxel-mm", type=float, nargs="+", required=True, metavar="MM", help="voxel size in mm: X [Y Z], 0.1 to 100"
    )
    kernel.add_argument("--output", required=True, help="kernel image file (e.g. K.nrrd), in mGy/(MBq*s)")
    kernel.add_argument("--nuclide", default="Lu-177", help="radionuclide (ICRP 107 name)")
    kernel.add_argument("--beta-size", type=int, default=9, help="beta kernel size in voxels (odd)")
    kernel.add_argument("--photon-size", type=int, default=99, help="photon kernel size in voxels (odd)")
    kernel.add_argument("--histories", type=int, default=10_000_000, help="photon Monte Carlo histories")
    kernel.add_argument("--seed", type=int, default=177, help="seed of the photon Monte Carlo")
    kernel.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    kernel.set_defaults(handler=_run_kernel)
