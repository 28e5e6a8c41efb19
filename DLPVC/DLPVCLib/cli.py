"""DL-PVC sub-commands of the ``deepdosimetry`` command (argparse only; the work is in the library modules).

Each ``register_*`` function is a ``deepdosimetry.commands`` entry point (``register_train`` a
``deepdosimetry.training`` one):

    deepdosimetry pvc --input SPECT.nrrd --method dl|iy [--seg SEG.nrrd] [--fwhm-mm X Y Z]
                      [--iterations N] [--model NAME] [--device DEVICE] --output OUT.nrrd [--table T.csv]
    deepdosimetry simulate-pvc --out DIR --n N --seed S ...
    deepdosimetry evaluate-pvc --data DIR --model NAME --output T.csv ...
    deepdosimetry demo-pvc [--out demo-output] [--case torso|random] ...
    deepdosimetry train dlpvc --data DIR --out CHECKPOINTS ...
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from DLPVCLib.constants import DEFAULT_FWHM_MM, DEFAULT_MODEL
from DLPVCLib.correction import TrainedModel, correct_dl, correct_iy, load_dlpvc_model, segment_rows, total_activity_Bq
from DLPVCLib.dataset import (
    CASE_KINDS,
    DEFAULT_RECONSTRUCTIONS,
    RECONSTRUCTIONS,
    SPLIT_FRACTIONS,
    SPLITS,
    TOTAL_ACTIVITY_RANGE_MBQ,
    write_dataset,
)
from DLPVCLib.demo import CASES, DEMO_SEED, run_demo
from DLPVCLib.evaluation import IY_ITERATIONS, card_metrics, evaluate, write_table
from DLPVCLib.networks import ARCHITECTURES, DLPVCModel
from DLPVCLib.train import DEFAULTS, LOSSES, card_fields, train_dlpvc
from DosimetryCore import io
from DosimetryCore.cli import parallel as parallel_cli
from DosimetryCore.core import provenance
from DosimetryCore.core.constants import BQ_PER_MBQ
from DosimetryCore.core.progress import terminal_progress
from DosimetryCore.core.provenance import stamp_command
from DosimetryCore.core.validation import activity_notes
from DosimetryCore.imaging import simulation
from DosimetryCore.io.labels import read_labelmap_on
from DosimetryCore.io.outputs import check_outputs
from DosimetryCore.io.tables import write_csv
from DosimetryCore.learning import models
from DosimetryCore.learning.distributed import is_main_process
from DosimetryCore.learning.ray_cases import CasesFailed
from DosimetryCore.learning.training import LR_SCHEDULES, PRECISIONS, load_checkpoint


def _check_paths(arguments: argparse.Namespace) -> None:
    """Refuse bad options before any computation, so that nothing is written on error."""
    if arguments.single_pass and arguments.method != "dl":
        raise ValueError("--single-pass: only for --method dl (how the network is run)")
    if arguments.method == "iy" and not arguments.seg:
        raise ValueError("--seg: IY-PVC needs a labelmap of the regions whose activity it restores")
    if arguments.table and not arguments.seg:
        raise ValueError("--table: needs --seg (the labelmap whose segments the table lists)")
    if not Path(arguments.output).name.lower().endswith(io.VOLUME_SUFFIXES):
        formats = ", ".join(io.VOLUME_SUFFIXES)
        raise ValueError(f"--output: {arguments.output} is not one of the volume formats {formats}")
    if arguments.table and Path(arguments.table).suffix.lower() != ".csv":
        raise ValueError(f"--table: {arguments.table} must be a .csv file")
    check_outputs(
        {"--input": arguments.input, "--seg": arguments.seg}, {"--output": arguments.output, "--table": arguments.table}
    )


def _run_pvc(arguments: argparse.Namespace) -> int:
    _check_paths(arguments)
    image = io.read_image(arguments.input)
    notes = activity_notes(image, f"--input {arguments.input}")
    segments = read_labelmap_on(arguments.seg, image, "--seg") if arguments.seg else None
    progress = terminal_progress()
    if arguments.method == "iy":
        corrected = correct_iy(image, *segments, arguments.fwhm_mm, arguments.iterations, progress)
    else:
        model = load_dlpvc_model(arguments.model, device=arguments.device)
        corrected = correct_dl(image, model, progress=progress, mirror_ensemble=not arguments.single_pass)
        for limitation in model.card.get("limitations", []):
            print(f"note ({model.name} model card): {limitation}", file=sys.stderr)
    rows = segment_rows(image, corrected, *segments) if segments else []
    stamp_command(corrected, "deepdosimetry pvc", {"input": arguments.input, "seg": arguments.seg})
    for note in provenance.add_warnings(corrected, notes):
        print(f"WARNING: {note}", file=sys.stderr)
    path = io.write_image(corrected, arguments.output)
    print(
        f"{path}: {arguments.method.upper()}-PVC, total activity {total_activity_Bq(image) / BQ_PER_MBQ:.6g} MBq "
        f"before, {total_activity_Bq(corrected) / BQ_PER_MBQ:.6g} MBq after"
    )
    for row in rows:
        print(
            f"  {row['segment']}: {row['volume_ml']:.4g} mL, mean {row['mean_before_Bq_per_mL']:.4g} -> "
            f"{row['mean_after_Bq_per_mL']:.4g} Bq/mL"
        )
    if arguments.table:
        print(f"{write_csv(rows, arguments.table)}: per-segment table")
    return 0


def register_pvc(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pvc`` sub-command to the ``deepdosimetry`` command's sub-parsers."""
    pvc = subparsers.add_parser(
        "pvc", help="partial-volume correction of 177Lu SPECT (Bq/mL): DL-PVC network or iterative Yang"
    )
    pvc.add_argument("--input", required=True, help="SPECT image, activity concentration in Bq/mL")
    pvc.add_argument("--method", choices=("dl", "iy"), required=True, help="dl: DL-PVC network; iy: iterative Yang")
    pvc.add_argument("--output", required=True, help="corrected image file (Bq/mL, e.g. OUT.nrrd)")
    pvc.add_argument("--seg", help="labelmap of the segments: IY-PVC regions (required for iy) and table rows")
    pvc.add_argument("--table", help="per-segment CSV: volume, mean before/after (Bq/mL), activity before/after (MBq)")
    pvc.add_argument(
        "--fwhm-mm",
        type=float,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=(DEFAULT_FWHM_MM,) * 3,
        help=f"iy: PSF FWHM in mm along x, y, z (default {DEFAULT_FWHM_MM:g} each: Siemens MELP at 200 mm)",
    )
    pvc.add_argument("--iterations", type=int, default=10, help="iy: iterations (default 10)")
    pvc.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"dl: model under Resources/Models (default {DEFAULT_MODEL})"
    )
    pvc.add_argument(
        "--single-pass",
        action="store_true",
        help="dl: one pass of the network, 8 times faster, instead of the mean over the input's 8 mirror images "
        "(the model card's metrics use the mean)",
    )
    pvc.add_argument("--device", default=None, help="dl: cpu, cuda, ... (default: cuda when available)")
    pvc.set_defaults(handler=_run_pvc)


def _run_simulate_pvc(arguments: argparse.Namespace) -> int:
    check_outputs({}, {}, {"--out": arguments.out})
    acquisition = replace(simulation.Acquisition(), views=arguments.views)
    options = parallel_cli.case_options(arguments)
    try:
        result = write_dataset(
            arguments.out,
            arguments.n,
            arguments.seed,
            arguments.size,
            arguments.spacing_mm,
            acquisition,
            total_activity_range_MBq=tuple(arguments.total_activity_MBq),
            split_fractions=tuple(arguments.split_fractions),
            kind=arguments.kind,
            reconstructions=tuple(arguments.reconstructions),
            progress=terminal_progress(),
            **options,
        )
    except CasesFailed as error:
        return parallel_cli.failed_cases("simulate-pvc", error)
    counts = result.manifest["split_counts"]
    times = list(result.simulated.values())
    timing = f", {np.mean(times):.1f} s per case" if times else ""
    print(
        f"{arguments.out}: simulated {len(result.simulated)} case(s){timing}, {len(result.skipped)} already complete; "
        f"splits: " + ", ".join(f"{name} {counts[name]}" for name in SPLITS)
    )
    empty = [name for name in SPLITS if counts[name] == 0]
    if empty:
        print(f"warning: empty split(s) {', '.join(empty)}: simulate more cases (--n) to train and evaluate")
    return 0


def register_simulate_pvc(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate-pvc`` (entry-point group ``deepdosimetry.commands``) to the ``deepdosimetry`` command."""
    command = subparsers.add_parser(
        "simulate-pvc",
        help="simulate a DL-PVC dataset: random activity in body phantoms, SPECT, OSEM images (as Leube et al.)",
    )
    command.add_argument("--out", required=True, help="dataset folder (created; an unfinished one is completed)")
    command.add_argument("--n", type=int, required=True, help="number of cases")
    command.add_argument("--seed", type=int, required=True, help="dataset seed (case seeds and splits follow)")
    command.add_argument("--size", type=int, default=128, help="voxels per axis (default 128)")
    command.add_argument("--spacing-mm", type=float, default=4.8, help="voxel size in mm (default 4.8)")
    command.add_argument("--views", type=int, default=simulation.Acquisition.views, help="SPECT views (default 120)")
    command.add_argument(
        "--total-activity-mbq",
        dest="total_activity_MBq",
        type=float,
        nargs=2,
        default=TOTAL_ACTIVITY_RANGE_MBQ,
        metavar=("LOW", "HIGH"),
        help="range of the activity in the field of view, MBq, drawn log-uniformly (default 300 3000)",
    )
    command.add_argument(
        "--split-fractions",
        type=float,
        nargs=3,
        default=SPLIT_FRACTIONS,
        metavar=("TRAIN", "VAL", "TEST"),
        help="expected shares of the train, val and test splits, summing to 1 (default 0.8 0.1 0.1; "
        "0 0.1 0.9 makes a held-out evaluation set)",
    )
    command.add_argument(
        "--kind",
        default="random",
        choices=CASE_KINDS,
        help="true activity: random (seed 003's shapes in a cold body, default), torso (patient-like PSMA or "
        "DOTATATE torso, organ uptakes x U(0.5, 2)) or warm (random shapes over a warm body)",
    )
    command.add_argument(
        "--reconstructions",
        nargs="+",
        default=DEFAULT_RECONSTRUCTIONS,
        choices=RECONSTRUCTIONS,
        help="OSEM images each case holds (default: " + " ".join(DEFAULT_RECONSTRUCTIONS) + ", the network's input; "
        "val cases also hold its noise-free twin, which calibrates IY-PVC; all four as seed 003 to train on noRR)",
    )
    parallel_cli.add_parallel_arguments(command)
    command.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    command.set_defaults(handler=_run_simulate_pvc)


def _load(arguments: argparse.Namespace) -> tuple[TrainedModel | DLPVCModel, dict[str, Any] | None]:
    """The model of ``--model`` (hash-checked, with its card) or the network of ``--checkpoint`` (card None)."""
    if arguments.model:
        network, card = models.load_model(
            arguments.model, DLPVCModel.from_config, arguments.device, arguments.models_dir
        )
        return TrainedModel(network, card), card
    checkpoint = load_checkpoint(arguments.checkpoint, arguments.device)
    if not checkpoint.get("model_config"):
        raise ValueError(f"checkpoint: {arguments.checkpoint} does not record a model_config to rebuild the network")
    model = DLPVCModel.from_config(checkpoint["model_config"])
    model.load_state_dict(checkpoint["model_state"])
    return model, None


def _run_evaluate(arguments: argparse.Namespace) -> int:
    check_outputs({"--data": arguments.data}, {"--output": arguments.output})
    if arguments.update_card and not arguments.model:
        raise ValueError("update-card: needs --model NAME (a registry model), not --checkpoint")
    model, card = _load(arguments)
    input_key = arguments.input or (card or {}).get("input", "osem_rr_noisy")
    evaluation = evaluate(
        model,
        arguments.data,
        arguments.split,
        input_key=input_key,
        iy_fwhm_mm=arguments.iy_fwhm_mm,
        iy_iterations=arguments.iy_iterations,
        device=arguments.device,
        progress=terminal_progress(),
    )
    name = arguments.model or Path(arguments.checkpoint).name
    paths = write_table(evaluation, arguments.output, title=f"{name} on {arguments.split} ({input_key})")
    print(paths[1].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(path) for path in paths))
    if arguments.update_card:
        training_spacing = float(card["grid"]["spacing_mm"][0]) if "grid" in card else None
        metrics = card_metrics(evaluation, training_spacing)
        models.update_card(arguments.model, metrics, arguments.models_dir)
        print(f"model card of {arguments.model!r} updated with the {arguments.split} metrics ({', '.join(metrics)})")
    return 0


def register_evaluate_pvc(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate-pvc`` (entry-point group ``deepdosimetry.commands``) to the ``deepdosimetry`` command."""
    command = subparsers.add_parser(
        "evaluate-pvc", help="held-out metrics of no PVC, iterative Yang PVC and DL-PVC (Table 1 of Leube et al.)"
    )
    command.add_argument("--data", required=True, help="dataset folder written by simulate-pvc")
    source = command.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="NAME", help="registry model name")
    source.add_argument("--checkpoint", metavar="PATH", help="training checkpoint (best.pt)")
    command.add_argument("--models-dir", default=None, help="registry folder (default Resources/Models)")
    command.add_argument("--output", required=True, help="table CSV (a .md, _cases.csv and .json are written beside)")
    command.add_argument("--split", default="test", help="split to evaluate (default test)")
    command.add_argument(
        "--input", default=None, help=f"reconstruction: {', '.join(RECONSTRUCTIONS)} (default: the model's)"
    )
    command.add_argument("--iy-fwhm-mm", type=float, default=None, help="IY-PVC FWHM (default: matched filter on val)")
    command.add_argument("--iy-iterations", type=int, default=IY_ITERATIONS, help="IY-PVC iterations (default 10)")
    command.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    command.add_argument("--update-card", action="store_true", help="write the metrics into the model's card")
    command.set_defaults(handler=_run_evaluate)


def _print_summary(result: dict[str, Any]) -> None:
    print(f"{'method':<8} {'SSIM':>6} {'NRMSE %':>8} {'VAA %':>6} {'AD %':>6}")
    for row in result["metrics"]:
        print(
            f"{row['method']:<8} {row['ssim']:6.3f} {row['nrmse_percent']:8.2f} {row['vaa_percent']:6.1f} "
            f"{row['ad_percent']:6.2f}"
        )
    provenance = result["provenance"]
    print(
        f"model {provenance['model']['name']} (sha256 {str(provenance['model']['weights_sha256'])[:12]}), "
        f"IY-PVC FWHM {provenance['iy_pvc']['fwhm_mm']:.2f} mm, {provenance['case']} case, seed {provenance['seed']}, "
        f"{provenance['wall_time_s']:.0f} s"
    )
    print("wrote " + ", ".join(str(path) for path in result["paths"].values()))


def _run_demo(arguments: argparse.Namespace) -> int:
    check_outputs({}, {}, {"--out": arguments.out})
    result = run_demo(
        arguments.out,
        arguments.seed,
        arguments.model,
        arguments.models_dir,
        arguments.device,
        terminal_progress(),
        arguments.case,
    )
    _print_summary(result)
    return 0


def register_demo_pvc(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo-pvc`` (entry-point group ``deepdosimetry.commands``) to the ``deepdosimetry`` command."""
    command = subparsers.add_parser(
        "demo-pvc", help="simulate a case, apply DL-PVC and IY-PVC, write metrics, figure and Slicer scene"
    )
    command.add_argument(
        "--case",
        choices=CASES,
        default=CASES[0],
        help="torso: a patient-like 177Lu-PSMA torso phantom (default); random: seed 003's random shapes in a cold "
        "body (Leube et al. Fig. 4)",
    )
    command.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    command.add_argument("--seed", type=int, default=DEMO_SEED, help=f"case seed (default {DEMO_SEED})")
    command.add_argument("--model", default=DEFAULT_MODEL, help=f"DL-PVC model (default {DEFAULT_MODEL})")
    command.add_argument("--models-dir", default=None, help="model folder (default Resources/Models)")
    command.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    command.set_defaults(handler=_run_demo)


def _command_line(arguments: argparse.Namespace) -> str:
    """The training command with every setting spelled out (what the model card records)."""
    words = [
        "deepdosimetry",
        "train",
        "dlpvc",
        "--data",
        *arguments.data,
        "--out",
        arguments.out,
        "--arch",
        arguments.arch,
        "--input",
        arguments.input,
        "--loss",
        arguments.loss,
        "--epochs",
        arguments.epochs,
        "--batch-size",
        arguments.batch_size,
        "--lr",
        arguments.lr,
        "--lr-schedule",
        arguments.lr_schedule,
        "--seed",
        arguments.seed,
    ]
    if arguments.no_flips:
        words.append("--no-flips")
    if arguments.precision != "float32":
        words += ["--precision", arguments.precision]
    if arguments.channels:
        words += ["--channels", *arguments.channels]
    if arguments.norm:
        words += ["--norm", arguments.norm]
    if arguments.patience is not None:
        words += ["--patience", arguments.patience]
    if arguments.init_model:
        words += ["--init-model", arguments.init_model]
    if arguments.resume:
        words.append("--resume")
    if arguments.save_model:
        words += ["--save-model", arguments.save_model]
    return shlex.join(str(word) for word in words)


def _run_train(arguments: argparse.Namespace) -> int:
    check_outputs({f"--data {folder}": folder for folder in arguments.data}, {}, {"--out": arguments.out})
    if arguments.save_model:
        models.check_new_model_name(arguments.save_model, arguments.models_dir, arguments.overwrite)
    run = train_dlpvc(
        arguments.data,
        arguments.out,
        arch=arguments.arch,
        channels=arguments.channels,
        norm=arguments.norm,
        input_key=arguments.input,
        loss=arguments.loss,
        epochs=arguments.epochs,
        batch_size=arguments.batch_size,
        lr=arguments.lr,
        lr_schedule=arguments.lr_schedule,
        seed=arguments.seed,
        flips=not arguments.no_flips,
        precision=arguments.precision,
        patience=arguments.patience,
        resume=arguments.resume,
        init_model=arguments.init_model,
        models_dir=arguments.models_dir,
        device=arguments.device,
        command=_command_line(arguments),
        progress=terminal_progress(),
    )
    if not is_main_process():  # under torchrun, rank 0 reports and saves
        return 0
    outcome = run.summary["result"]
    print(
        f"trained {outcome['epochs_run']} epoch(s) in {outcome['wall_time_s']:.1f} s; best val loss "
        f"{outcome['best_val_loss']:.4g} at epoch {outcome['best_epoch']}; {run.summary_path}, {run.loss_curve}"
    )
    if arguments.save_model:
        folder = models.save_model(
            run.model, arguments.save_model, card_fields(run.summary), arguments.models_dir, arguments.overwrite
        )
        print(f"model {arguments.save_model!r} written to {folder}; add its held-out metrics with evaluate-pvc")
    return 0


def register_train(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``dlpvc`` to ``deepdosimetry train`` (entry-point group ``deepdosimetry.training``)."""
    command = train_subparsers.add_parser(
        "dlpvc", help="train a DL-PVC network on a simulate-pvc dataset (Leube et al.)"
    )
    command.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="dataset folder(s) written by simulate-pvc; several are trained on together (e.g. one per --kind)",
    )
    command.add_argument("--out", required=True, help="checkpoint folder (checkpoints, loss curve, summary)")
    command.add_argument("--arch", default="r2unet", help=f"network: {', '.join(ARCHITECTURES)} (default r2unet)")
    command.add_argument("--channels", type=int, nargs="+", help="feature channels per level (default 16 32 64 128)")
    command.add_argument("--norm", default=None, help="instance or batch (default: instance for r2unet)")
    command.add_argument(
        "--input", default="osem_rr_noisy", help=f"reconstruction to correct: {', '.join(RECONSTRUCTIONS)}"
    )
    command.add_argument("--loss", default=DEFAULTS["loss"], help=f"{', '.join(LOSSES)} (default l1)")
    command.add_argument(
        "--init-model", metavar="NAME", help="fine-tune: start from this installed model's weights (same architecture)"
    )
    command.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="default 100")
    command.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="default 2")
    command.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="Adam learning rate (default 1e-3)")
    command.add_argument(
        "--lr-schedule", default=DEFAULTS["lr_schedule"], help=f"{', '.join(LR_SCHEDULES)} (default plateau)"
    )
    command.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="weights and batch order (default 0)")
    command.add_argument("--no-flips", action="store_true", help="no random mirroring of the training cases")
    command.add_argument(
        "--precision",
        default="float32",
        choices=PRECISIONS,
        help="bf16: training steps under bfloat16 autocast (faster on CPUs with AVX-512 BF16; validation stays "
        "float32); default float32",
    )
    command.add_argument("--patience", type=int, default=None, help="stop after this many epochs without improvement")
    command.add_argument("--resume", action="store_true", help="continue from the checkpoint folder's latest.pt")
    command.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    command.add_argument("--save-model", metavar="NAME", help="write the trained model into the model registry")
    command.add_argument("--models-dir", default=None, help="registry folder (default Resources/Models)")
    command.add_argument("--overwrite", action="store_true", help="replace an existing model of that name")
    command.set_defaults(handler=_run_train)
