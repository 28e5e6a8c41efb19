"""The ``deepdosimetry`` command.

Core sub-commands live here; each method package adds its own through the
``deepdosimetry.commands`` entry-point group (a ``register(subparsers)`` callable), so that
DosimetryCore never imports a method package.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import DosimetryCore
from DosimetryCore import io, resources, simulation_cli
from DosimetryCore.device import resolve_device

ENTRY_POINT_GROUP = "deepdosimetry.commands"

_REPORTED_PACKAGES = ("torch", "monai", "numpy", "scipy", "SimpleITK", "pydicom", "icrp107-database", "slicer-core")


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _listing(folder: Path) -> str:
    if not folder.is_dir():
        return f"{folder} (missing)"
    entries = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    return f"{folder} ({', '.join(entries) if entries else 'empty'})"


def info_lines(commands: Sequence[str]) -> list[str]:
    """The lines ``deepdosimetry info`` prints: versions, device and resource locations."""
    import torch

    device = resolve_device(None)
    if device.type == "cuda":
        device_text = f"cuda ({torch.cuda.get_device_name(device)}), {torch.cuda.device_count()} device(s)"
    else:
        device_text = f"cpu ({torch.get_num_threads()} threads); CUDA available: no"
    lines = [
        f"DeepDosimetry {DosimetryCore.__version__}",
        f"python {platform.python_version()} on {platform.platform()}",
    ]
    lines += [f"{name} {_package_version(name)}" for name in _REPORTED_PACKAGES]
    lines.append(f"default device: {device_text}")
    try:
        lines.append(f"resources: {resources.resources_dir()}")
        lines.append(f"models looked up in: {_listing(resources.models_dir())}")
        lines.append(f"kernels looked up in: {_listing(resources.kernels_dir())}")
    except ValueError as error:
        lines.append(f"resources: {error}")
    lines.append(f"commands: {', '.join(sorted(commands))}")
    return lines


def _run_info(arguments: argparse.Namespace) -> int:
    print("\n".join(info_lines(arguments.command_names)))
    return 0


def _run_import_planar(arguments: argparse.Namespace) -> int:
    pair = io.read_planar(arguments.dicom)
    output = Path(arguments.out)
    for view in (pair.anterior, pair.posterior):
        image = view.image
        image.SetMetaData("deepdosimetry.frame_duration_s", f"{view.frame_duration_s:g}")
        image.SetMetaData("deepdosimetry.source", view.source)
        path = io.write_image(image, output / f"{view.view}.nrrd")
        print(f"{view.view}: {path} ({view.total_counts:.6g} counts in {view.frame_duration_s:g} s)")
    return 0


def _add_core_commands(subparsers: argparse._SubParsersAction) -> None:
    info = subparsers.add_parser("info", help="versions, compute device and where models and kernels are looked up")
    info.set_defaults(handler=_run_info)
    planar = subparsers.add_parser(
        "import-planar", help="read anterior/posterior NM planar DICOM into anterior.nrrd and posterior.nrrd"
    )
    planar.add_argument("dicom", nargs="+", help="one multi-frame NM file, or two single-view files")
    planar.add_argument("--out", required=True, help="output folder")
    planar.set_defaults(handler=_run_import_planar)
    _add_dose_commands(subparsers)


def _run_kernel(arguments: argparse.Namespace) -> int:
    from DosimetryCore import dose
    from DosimetryCore.progress import terminal_progress

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
    from DosimetryCore.progress import terminal_progress

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


def _add_dose_commands(subparsers: argparse._SubParsersAction) -> None:
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
    simulation_cli.register(subparsers)


def _discovered_registrations() -> list[tuple[str, Callable[[argparse._SubParsersAction], None]]]:
    return [(point.name, point.load()) for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the core sub-commands and every registered method's."""
    parser = argparse.ArgumentParser(prog="deepdosimetry", description="177Lu dosimetry with deep learning")
    parser.add_argument("--version", action="version", version=f"deepdosimetry {DosimetryCore.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_core_commands(subparsers)
    for name, register in _discovered_registrations():
        try:
            register(subparsers)
        except argparse.ArgumentError as error:
            raise RuntimeError(f"entry point {name!r} in {ENTRY_POINT_GROUP} registers a clashing command") from error
    parser.set_defaults(command_names=list(subparsers.choices))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 with a message on bad input)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except ValueError as error:
        print(f"deepdosimetry {arguments.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
