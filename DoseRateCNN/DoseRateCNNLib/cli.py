"""Sub-command ``dose-rate`` of the ``deepdosimetry`` command (entry point ``deepdosimetry.commands``).

    deepdosimetry dose-rate --activity A.nrrd --ct CT.nrrd --method vdk|led|mc --output D.nrrd
                            [--seg LABELS.nrrd --table T.csv]
"""

from __future__ import annotations

import argparse

from DosimetryCore import io
from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.provenance import stamp_command


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
    inputs = {"activity": arguments.activity, "ct": arguments.ct, "seg": arguments.seg}
    stamp_command(result.image, "deepdosimetry dose-rate", inputs)
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
    """Add ``dose-rate`` (absorbed dose rate in Gy/h) to the ``deepdosimetry`` command."""
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
