"""``simulate-dose``: a DoseRateCNN training or held-out dataset (entry point ``deepdosimetry.commands``).

deepdosimetry simulate-dose --out DIR --n N --seed S [--dose-spacing-mm MM] [--histories H]
    [--workers W | --ray [ADDRESS]] [--threads T]
"""

from __future__ import annotations

import argparse

from DosimetryCore.cli import parallel as parallel_cli
from DosimetryCore.core.progress import terminal_progress
from DosimetryCore.io.outputs import check_outputs
from DosimetryCore.learning.ray_cases import CasesFailed

from ..data import DoseCaseSettings
from ..dataset import SPLIT_FRACTIONS, write_dose_dataset

_DEFAULTS = DoseCaseSettings()


def _run_simulate_dose(arguments: argparse.Namespace) -> int:
    check_outputs({}, {}, {"--out": arguments.out})
    settings = DoseCaseSettings(
        dose_spacing_mm=arguments.dose_spacing_mm,
        spect_spacing_mm=arguments.spect_spacing_mm,
        count_levels=tuple(arguments.count_levels),
        iterations=arguments.iterations,
        subsets=arguments.subsets,
        views=arguments.views,
        photon_histories=arguments.histories,
        mc_on_spect=arguments.mc_on_spect,
    )
    options = parallel_cli.case_options(arguments)
    try:
        manifest = write_dose_dataset(
            arguments.out,
            arguments.n,
            arguments.seed,
            settings,
            split_fractions=tuple(arguments.split_fractions),
            progress=terminal_progress(),
            **options,
        )
    except CasesFailed as error:
        return parallel_cli.failed_cases("simulate-dose", error)
    counts = manifest["split_counts"]
    print(f"{arguments.out}: {manifest['n']} case(s); splits: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def register_simulate_dose(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate-dose`` to the ``deepdosimetry`` command."""
    command = subparsers.add_parser(
        "simulate-dose",
        help="simulate a DoseRateCNN dataset: virtual patients, Monte Carlo dose rate of the true activity, SPECT at "
        "four count levels and its VDK dose rate (as Li et al.)",
    )
    command.add_argument("--out", required=True, help="dataset folder (created; an unfinished one is completed)")
    command.add_argument("--n", type=int, required=True, help="number of cases")
    command.add_argument("--seed", type=int, required=True, help="dataset seed (case seeds and splits follow)")
    command.add_argument(
        "--dose-spacing-mm", type=float, default=_DEFAULTS.dose_spacing_mm, help="dose grid voxel (mm)"
    )
    command.add_argument(
        "--spect-spacing-mm", type=float, default=_DEFAULTS.spect_spacing_mm, help="SPECT reconstruction voxel (mm)"
    )
    command.add_argument(
        "--count-levels", type=float, nargs="+", default=list(_DEFAULTS.count_levels), metavar="COUNTS",
        help="total counts of each SPECT (Li et al.'s four levels)",
    )  # fmt: skip
    command.add_argument("--iterations", type=int, default=_DEFAULTS.iterations, help="OSEM-RR iterations")
    command.add_argument("--subsets", type=int, default=_DEFAULTS.subsets, help="OSEM-RR subsets")
    command.add_argument("--views", type=int, default=_DEFAULTS.views, help="SPECT views over 360 degrees")
    command.add_argument(
        "--histories", type=int, default=_DEFAULTS.photon_histories,
        help="Monte Carlo photon histories of the label (organ means must carry < 1 %% uncertainty; each case "
        "records its own)",
    )  # fmt: skip
    command.add_argument(
        "--mc-on-spect", action="store_true",
        help="also the Monte Carlo dose rate of each SPECT (Li et al.'s second reference; for held-out sets)",
    )  # fmt: skip
    command.add_argument(
        "--split-fractions", type=float, nargs=3, default=list(SPLIT_FRACTIONS), metavar=("TRAIN", "VAL", "TEST"),
        help="expected shares of the splits, summing to 1 (0 0 1 makes a held-out evaluation set)",
    )  # fmt: skip
    parallel_cli.add_parallel_arguments(command)
    command.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_simulate_dose)


def _run_demo_dose(arguments: argparse.Namespace) -> int:
    from ..demo import run_demo

    check_outputs({}, {}, {"--out": arguments.out})
    result = run_demo(
        arguments.out,
        seed=arguments.seed,
        total_counts=arguments.counts,
        model_name=arguments.model,
        models_dir=arguments.models_dir,
        device=arguments.device,
        progress=terminal_progress(),
    )
    print(f"{arguments.out}: report.png, regions.csv, report.mrb ({result['wall_time_s']:.0f} s)")
    methods = [key[: -len(" MDE %")] for key in result["rows"][0] if key.endswith(" MDE %")]
    print(f"  {'region':24s}" + "".join(f"{m + ' MDE/NRMSE %':>26s}" for m in methods))
    for row in result["rows"]:
        cells = "".join(f"{row[m + ' MDE %']:>13.1f}{row[m + ' NRMSE %']:>13.1f}" for m in methods)
        print(f"  {row['region']:24s}{cells}")
    return 0


def register_demo_dose(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo-dose`` to the ``deepdosimetry`` command."""
    from ..cnn import DEFAULT_MODEL
    from ..demo import DEFAULT_COUNT_LEVEL, DEMO_SEED

    command = subparsers.add_parser(
        "demo-dose",
        help="one virtual patient: VDK, Monte Carlo on SPECT and the CNN against the Monte Carlo of the true "
        "activity, with a figure and the per-region table",
    )
    command.add_argument("--out", default="demo-output/dose", help="output folder")
    command.add_argument("--seed", type=int, default=DEMO_SEED, help="case seed")
    command.add_argument("--counts", type=float, default=DEFAULT_COUNT_LEVEL, help="total counts of the SPECT")
    command.add_argument("--model", default=DEFAULT_MODEL, help="installed dose-rate CNN")
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_demo_dose)
