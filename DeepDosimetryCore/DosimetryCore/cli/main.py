"""The ``deepdosimetry`` command.

Core sub-commands live here and in :mod:`.simulate`, :mod:`.dose` (``kernel``) and :mod:`.report`;
each method package adds its own through the ``deepdosimetry.commands`` entry-point group and its ``train <method>``
command through ``deepdosimetry.training`` (each a ``register(subparsers)`` callable), so that
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
from DosimetryCore import io
from DosimetryCore.cli import absorbed as absorbed_cli
from DosimetryCore.cli import dose as dose_cli
from DosimetryCore.cli import report as report_cli
from DosimetryCore.cli import simulate as simulation_cli
from DosimetryCore.core import resources
from DosimetryCore.core.device import resolve_device
from DosimetryCore.io.outputs import check_outputs

ENTRY_POINT_GROUP = "deepdosimetry.commands"
TRAINING_ENTRY_POINT_GROUP = "deepdosimetry.training"

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
        lines.append(f"kernels generated here are cached in: {resources.kernel_cache_dir()}")
    except ValueError as error:
        lines.append(f"resources: {error}")
    lines.append(f"commands: {', '.join(sorted(commands))}")
    return lines


def _run_info(arguments: argparse.Namespace) -> int:
    print("\n".join(info_lines(arguments.command_names)))
    return 0


def _run_import_planar(arguments: argparse.Namespace) -> int:
    output = Path(arguments.out)
    check_outputs(
        {f"input {index + 1}": path for index, path in enumerate(arguments.dicom)},
        {"anterior.nrrd": output / "anterior.nrrd", "posterior.nrrd": output / "posterior.nrrd"},
        {"--out": output},
    )
    pair = io.read_planar(arguments.dicom)
    for view in (pair.anterior, pair.posterior):
        image = view.image
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
    simulation_cli.register(subparsers)
    dose_cli.register(subparsers)
    absorbed_cli.register(subparsers)
    report_cli.register(subparsers)


def _discovered_registrations(group: str) -> list[tuple[str, Callable[[argparse._SubParsersAction], None]]]:
    return [(point.name, point.load()) for point in importlib.metadata.entry_points(group=group)]


def _register_all(group: str, subparsers: argparse._SubParsersAction) -> None:
    for name, register in _discovered_registrations(group):
        try:
            register(subparsers)
        except argparse.ArgumentError as error:
            raise RuntimeError(f"entry point {name!r} in {group} registers a clashing command") from error


class _DefaultsFormatter(argparse.HelpFormatter):
    """Help that ends every option's text with its default, unless it has none or the text names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


class _CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: help with defaults (:class:`_DefaultsFormatter`)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the core sub-commands and every registered method's.

    Method packages add sub-commands through the :data:`ENTRY_POINT_GROUP` entry points and
    ``train <method>`` commands through the :data:`TRAINING_ENTRY_POINT_GROUP` ones; ``train``
    exists only when some method registers one.
    """
    parser = argparse.ArgumentParser(prog="deepdosimetry", description="177Lu dosimetry with deep learning")
    parser.add_argument("--version", action="version", version=f"deepdosimetry {DosimetryCore.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    subparsers.required = True
    _add_core_commands(subparsers)
    _register_all(ENTRY_POINT_GROUP, subparsers)
    if _discovered_registrations(TRAINING_ENTRY_POINT_GROUP):
        train = subparsers.add_parser("train", help="train a method's network on simulated data")
        methods = train.add_subparsers(dest="method", metavar="METHOD")
        methods.required = True
        _register_all(TRAINING_ENTRY_POINT_GROUP, methods)
    parser.set_defaults(command_names=list(subparsers.choices))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 with a message on bad input)."""
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        return arguments.handler(arguments)
    except ValueError as error:
        return _failed(arguments.command, str(error))
    except MemoryError:
        return _failed(arguments.command, "not enough memory for this input size; use a smaller size or grid")
    except OSError as error:
        return _failed(arguments.command, f"{error.strerror or error}: {error.filename or ''}".rstrip(": "))


def _failed(command: str, message: str) -> int:
    """Print one error line (on a line of its own, after any progress bar) and return exit status 2."""
    prefix = "\n" if sys.stderr.isatty() else ""
    print(f"{prefix}deepdosimetry {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
