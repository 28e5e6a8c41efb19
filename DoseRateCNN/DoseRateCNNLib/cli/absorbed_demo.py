"""``demo-absorbed``: one virtual patient at four time points through SPECT, dose rate and time integration,
against its true absorbed dose (entry point ``deepdosimetry.commands``).

deepdosimetry demo-absorbed [--out DIR] [--seed S] [--model NAME] [--spacing-mm MM] [--views V] [--device D]
"""

from __future__ import annotations

import argparse

from DosimetryCore.core.progress import terminal_progress
from DosimetryCore.io.outputs import check_outputs


def _run(arguments: argparse.Namespace) -> int:
    from ..absorbed_demo import AbsorbedDemoSettings, run_absorbed_demo

    check_outputs({}, {}, {"--out": arguments.out})
    settings = AbsorbedDemoSettings(
        spacing_mm=arguments.spacing_mm, views=arguments.views, truth_histories=arguments.histories
    )
    result = run_absorbed_demo(
        arguments.out,
        seed=arguments.seed,
        settings=settings,
        model_name=arguments.model,
        models_dir=arguments.models_dir,
        device=arguments.device,
        progress=terminal_progress(),
    )
    print(f"{arguments.out}: absorbed.csv, absorbed.md, report.png, report.mrb ({result['wall_time_s']:.0f} s)")
    print(f"  {'segment':14s}{'true Gy':>9s}{'CNN Gy':>9s}{'error %':>9s}{'VDK Gy':>9s}{'error %':>9s}"
          f"{'chain check %':>15s}  model (CNN)")  # fmt: skip
    for row in result["rows"]:
        print(f"  {row['segment']:14s}{row['true_Gy']:9.3g}{row['CNN_Gy']:9.3g}{row['CNN_error_%']:9.1f}"
              f"{row['VDK_Gy']:9.3g}{row['VDK_error_%']:9.1f}{row['chain_check_error_%']:15.1f}"
              f"  {row['CNN_model']}")  # fmt: skip
    for time, notes in result["provenance"]["cnn_warnings"].items():
        for note in notes:
            print(f"WARNING: CNN dose rate at {time}: {note}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo-absorbed`` to the ``deepdosimetry`` command."""
    from ..absorbed_demo import DEMO_SEED, AbsorbedDemoSettings
    from ..cnn import DEFAULT_MODEL

    defaults = AbsorbedDemoSettings()
    command = subparsers.add_parser(
        "demo-absorbed",
        help="one virtual patient with organ kinetics imaged at 4, 24, 96 and 168 h with small misalignments: "
        "SPECT, CNN and VDK dose rates, registration and time integration against the true absorbed dose",
    )
    command.add_argument("--out", default="demo-output/absorbed", help="output folder")
    command.add_argument("--seed", type=int, default=DEMO_SEED, help="seed of the patient, noise and Monte Carlo")
    command.add_argument("--model", default=DEFAULT_MODEL, help="installed dose-rate CNN")
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--spacing-mm", type=float, default=defaults.spacing_mm, help="voxel of SPECT and dose (mm)")
    command.add_argument("--views", type=int, default=defaults.views, help="SPECT views")
    command.add_argument(
        "--histories", type=int, default=defaults.truth_histories, help="Monte Carlo photon histories of the truth"
    )
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run)
