"""Sub-command ``dose-rate`` of the ``deepdosimetry`` command (entry point ``deepdosimetry.commands``).

deepdosimetry dose-rate --activity A.nrrd --ct CT.nrrd --method vdk|led|mc --output D.nrrd
                        [--seg LABELS.nrrd --table T.csv]
"""

from __future__ import annotations

import argparse

from DosimetryCore import io
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.provenance import stamp_command
from DosimetryCore.core.volume import require_same_geometry
from DosimetryCore.dose.montecarlo import DEFAULT_BATCHES, DEFAULT_SEED
from DosimetryCore.dose.montecarlo import DEFAULT_PHOTON_HISTORIES as DEFAULT_HISTORIES
from DosimetryCore.io.outputs import check_outputs

_MC_OPTIONS = {"histories": "--histories", "batches": "--batches", "seed": "--seed", "electrons": "--electrons"}


def _check_method_options(arguments: argparse.Namespace) -> None:
    """Refuse options that the chosen method would ignore."""
    method = arguments.method
    ignored = []
    if method != "mc":
        ignored += [flag for name, flag in _MC_OPTIONS.items() if getattr(arguments, name) is not None]
        ignored += ["--uncertainty"] if arguments.uncertainty else []
    if method != "led" and arguments.led_photons:
        ignored.append("--led-photons")
    if method != "vdk" and arguments.density_scaling is not None:
        ignored.append("--density-scaling")
    if method != "cnn":
        ignored += [
            flag
            for flag, value in (
                ("--model", arguments.model),
                ("--models-dir", arguments.models_dir),
                ("--counts", arguments.counts),
            )
            if value
        ]
    if ignored:
        raise ValueError(f"{', '.join(ignored)}: not used by --method {method}; remove them or choose their method")
    if arguments.table and not arguments.seg:
        raise ValueError("--table: needs --seg (the labelmap whose segments the table lists)")


def _conventional(arguments: argparse.Namespace, activity, ct):
    from DosimetryCore import dose
    from DosimetryCore.core.progress import terminal_progress

    return dose.compute_dose_rate(
        activity,
        ct,
        arguments.method,
        nuclide=arguments.nuclide,
        include_photons=arguments.led_photons,
        density_scaling=arguments.density_scaling or "electrons",
        photon_histories=arguments.histories or DEFAULT_HISTORIES,
        batches=arguments.batches or DEFAULT_BATCHES,
        seed=DEFAULT_SEED if arguments.seed is None else arguments.seed,
        electron_transport=arguments.electrons or "kernel",
        device=resolve_device(arguments.device),
        progress=terminal_progress(),
    )


def _run_dose_rate(arguments: argparse.Namespace) -> int:
    from DosimetryCore import dose
    from DosimetryCore.core.progress import terminal_progress

    _check_method_options(arguments)
    check_outputs(
        {"--activity": arguments.activity, "--ct": arguments.ct, "--seg": arguments.seg},
        {"--output": arguments.output, "--table": arguments.table, "--uncertainty": arguments.uncertainty},
    )
    activity = io.read_image(arguments.activity)
    ct = dose.ct_on_activity_grid(io.read_image(arguments.ct), activity, f"--ct {arguments.ct}")
    labelmap = io.read_image(arguments.seg) if arguments.seg else None
    if labelmap is not None:
        require_same_geometry(labelmap, activity, f"--seg {arguments.seg}", f"--activity {arguments.activity}")
    if arguments.method == "cnn":
        from ..cnn import DEFAULT_MODEL, cnn_dose_rate, load_dose_model

        model, card = load_dose_model(arguments.model or DEFAULT_MODEL, arguments.device, arguments.models_dir)
        result = cnn_dose_rate(
            activity, ct, model, card, counts=arguments.counts, device=arguments.device, progress=terminal_progress()
        )
    else:
        result = _conventional(arguments, activity, ct)
    rows = dose.segment_table(result.image, labelmap, ct=ct) if labelmap is not None else []
    inputs = {"activity": arguments.activity, "ct": arguments.ct, "seg": arguments.seg}
    stamp_command(result.image, "deepdosimetry dose-rate", inputs)
    path = io.write_image(result.image, arguments.output)
    print(f"{path}: dose rate ({dose.DOSE_RATE_UNIT}) by {arguments.method}; zero outside the body outline of the CT")
    for warning in result.provenance.get("warnings", []):
        print(f"WARNING: {warning}")
    if arguments.uncertainty and result.relative_uncertainty is not None:
        print(f"{io.write_image(result.relative_uncertainty, arguments.uncertainty)}: relative uncertainty")
    for row in rows:
        print(
            f"  {row['segment']}: mean {row['mean']:.4g}, max {row['max']:.4g} {dose.DOSE_RATE_UNIT}, "
            f"{row['mass_g']:.4g} g"
        )
    if arguments.table:
        print(f"{dose.write_table_csv(rows, arguments.table)}: per-segment table")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dose-rate`` (absorbed dose rate in Gy/h) to the ``deepdosimetry`` command."""
    rate = subparsers.add_parser("dose-rate", help="absorbed dose-rate map (Gy/h) from activity (Bq/mL) and CT (HU)")
    rate.add_argument("--activity", required=True, help="activity concentration image (Bq/mL)")
    rate.add_argument("--ct", required=True, help="CT image (HU), resampled onto the activity's grid")
    rate.add_argument(
        "--method", choices=("vdk", "led", "mc", "cnn"), default="vdk",
        help="voxel dose kernels with density scaling, local energy deposition, Monte Carlo, or the residual CNN "
        "on the VDK dose rate (Li et al.)",
    )  # fmt: skip
    rate.add_argument("--model", help="cnn only: installed model name (default dose-cnn)")
    rate.add_argument("--models-dir", help="cnn only: models folder (default: the resources' Models)")
    rate.add_argument(
        "--counts", type=float, help="cnn only: the SPECT's total counts, checked against the model's trained levels"
    )
    rate.add_argument("--output", required=True, help="dose-rate image file (Gy/h); must not be an input")
    rate.add_argument("--seg", help="labelmap image of the segments for the table, on the activity's grid")
    rate.add_argument("--table", help="per-segment table (CSV, Gy/h and mL) of mean, max and D2/D50/D98 dose rates")
    rate.add_argument("--uncertainty", help="mc only: relative-uncertainty image file (fraction)")
    rate.add_argument("--nuclide", default="Lu-177", help="radionuclide (ICRP 107 name)")
    rate.add_argument("--led-photons", action="store_true", help="led only: deposit the photon energy locally too")
    rate.add_argument(
        "--density-scaling", choices=("electrons", "total"),
        help="vdk only: scale the beta kernel's dose by 1.04 g/cm^3 / density (electrons; the default) or the "
        "whole kernel's (total, as Li et al.)",
    )  # fmt: skip
    rate.add_argument("--histories", type=int, help=f"mc only: photon histories (default {DEFAULT_HISTORIES:.0e})")
    rate.add_argument("--batches", type=int, help=f"mc only: batches for the uncertainty (default {DEFAULT_BATCHES})")
    rate.add_argument("--seed", type=int, help=f"mc only: random seed (default {DEFAULT_SEED})")
    rate.add_argument(
        "--electrons", choices=("kernel", "local"),
        help="mc only: decay-electron energy spread by the beta point kernel or kept in the voxel (default kernel)",
    )  # fmt: skip
    rate.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    rate.set_defaults(handler=_run_dose_rate)
