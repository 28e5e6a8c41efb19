"""``train dose-cnn`` (entry point ``deepdosimetry.training``) and ``evaluate-dose`` (``deepdosimetry.commands``).

deepdosimetry train dose-cnn --data DIR --out CHECKPOINTS [--epochs N ...] [--save-model NAME]
deepdosimetry evaluate-dose --data DIR [--model NAME | --checkpoint CKPT] --output T.csv [--update-card]
"""

from __future__ import annotations

import argparse
import shlex
import sys

from DosimetryCore.core.progress import terminal_progress
from DosimetryCore.io.outputs import check_outputs
from DosimetryCore.learning import models
from DosimetryCore.learning.distributed import is_main_process
from DosimetryCore.learning.training import BEST_CHECKPOINT, load_checkpoint

from ..cnn import DEFAULT_MODEL, load_dose_model, network_dose_rate
from ..dataset import read_manifest
from ..evaluation import card_metrics, evaluate_dose, write_tables
from ..train import DEFAULTS, LOSSES, card_fields, train_dose_cnn
from ..training_data import PackedDoseNet


def _run_train(arguments: argparse.Namespace) -> int:
    check_outputs({"--data": arguments.data}, {}, {"--out": arguments.out})
    if arguments.save_model:
        models.check_new_model_name(arguments.save_model, arguments.models_dir, arguments.overwrite)
    run = train_dose_cnn(
        arguments.data,
        arguments.out,
        epochs=arguments.epochs,
        batch_size=arguments.batch_size,
        lr=arguments.lr,
        seed=arguments.seed,
        crop=arguments.crop or None,
        slices_per_volume=arguments.slices_per_volume,
        val_slice_step=arguments.val_slice_step,
        patience=arguments.patience or None,
        loss=arguments.loss,
        max_cases=arguments.max_cases,
        init_model=arguments.init_model,
        models_dir=arguments.models_dir,
        device=arguments.device,
        resume=arguments.resume,
        progress=terminal_progress(),
        command=shlex.join(["deepdosimetry", *sys.argv[1:]]) if sys.argv[1:2] == ["train"] else "",
    )
    if not is_main_process():  # under torchrun, rank 0 reports and saves
        return 0
    result = run.summary["result"]
    print(
        f"best validation loss {result['best_val_loss']:.4g} at epoch {result['best_epoch']} of {result['epochs_run']} "
        f"({result['wall_time_s']:.0f} s); summary {run.summary_path}, loss curve {run.loss_curve}"
    )
    if arguments.save_model:
        folder = models.save_model(
            run.model, arguments.save_model, card_fields(run.summary), arguments.models_dir, arguments.overwrite
        )
        print(f"model {arguments.save_model!r} written to {folder}; add its held-out table with evaluate-dose")
    return 0


def register_train(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``dose-cnn`` to ``deepdosimetry train``."""
    command = train_subparsers.add_parser(
        "dose-cnn", help="train the residual dose-rate CNN (Li et al.) on a simulate-dose dataset"
    )
    command.add_argument("--data", required=True, help="simulate-dose dataset folder with train and val cases")
    command.add_argument("--out", required=True, help="checkpoint folder (latest.pt, best.pt, summary, loss curve)")
    command.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="epochs in all (resumed ones count)")
    command.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="slices per batch")
    command.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="Adam learning rate (ReduceLROnPlateau)")
    command.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of weights, order and draws")
    command.add_argument("--crop", type=int, default=DEFAULTS["crop"], help="in-plane random crop (0: whole slices)")
    command.add_argument(
        "--slices-per-volume", type=int, default=DEFAULTS["slices_per_volume"],
        help="random slices per (case, count level) per epoch",
    )  # fmt: skip
    command.add_argument(
        "--val-slice-step", type=int, default=DEFAULTS["val_slice_step"], help="validate on every n-th slice"
    )
    command.add_argument(
        "--patience", type=int, default=DEFAULTS["patience"],
        help="early stop after n epochs without improvement (0: never)",
    )  # fmt: skip
    command.add_argument(
        "--loss", default=DEFAULTS["loss"], choices=tuple(LOSSES),
        help="body: Li et al.'s 0.7 body / 0.3 outside MSE; region: each organ's and lesion's squared error relative "
        "to VDK's there, so that every region counts alike; region+mean: region plus a term on each region's mean "
        "error (organ and lesion means not left short by partial volume)",
    )  # fmt: skip
    command.add_argument("--max-cases", type=int, help="use only the first cases of each split")
    command.add_argument("--resume", action="store_true", help="continue from --out/latest.pt")
    command.add_argument("--init-model", help="start from this installed model's weights (fine-tuning) instead of VDK")
    command.add_argument("--save-model", help="install the trained model under this name in the models folder")
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--overwrite", action="store_true", help="replace an installed model of that name")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_train)


def _model(arguments: argparse.Namespace) -> tuple[PackedDoseNet, dict | None]:
    if arguments.checkpoint:
        checkpoint = load_checkpoint(arguments.checkpoint, "cpu")
        model = PackedDoseNet.from_config(checkpoint["model_config"])
        model.load_state_dict(checkpoint["model_state"])
        return model.eval(), None
    return load_dose_model(arguments.model, "cpu", arguments.models_dir)


def _run_evaluate(arguments: argparse.Namespace) -> int:
    if arguments.update_card and arguments.checkpoint:
        raise ValueError("--update-card: needs --model NAME (an installed model), not --checkpoint")
    check_outputs({"--data": arguments.data, "--checkpoint": arguments.checkpoint}, {"--output": arguments.output})
    settings = read_manifest(arguments.data)["settings"]
    if arguments.update_card and not settings.get("mc_on_spect"):
        raise ValueError(
            f"--update-card: {arguments.data} was simulated without --mc-on-spect; a model card's held-out table "
            "needs the Monte Carlo baseline (simulate a held-out set with --mc-on-spect --split-fractions 0 0 1)"
        )
    spacing = float(settings["dose_spacing_mm"])
    model, card = _model(arguments)

    def predict(arrays: dict, level: int):
        voxel_ml = spacing**3 / 1000.0
        return network_dose_rate(
            model, arrays[f"spect_{level}"], arrays["hu"], arrays[f"vdk_{level}"], voxel_ml, arguments.device
        )

    if card is not None and float(card["training_domain"]["dose_spacing_mm"]) != spacing:
        raise ValueError(
            f"--data: its dose grid is {spacing:g} mm but model {card['name']!r} was trained at "
            f"{card['training_domain']['dose_spacing_mm']:g} mm"
        )
    evaluation = evaluate_dose(
        arguments.data, predict, split=arguments.split, max_cases=arguments.max_cases, progress=terminal_progress()
    )
    name = arguments.model if card is not None else arguments.checkpoint
    for path in write_tables(evaluation, arguments.output, f"DoseRateCNN held-out evaluation of {name}"):
        print(f"{path}")
    for row in evaluation.rows:
        if row["count_level"] == "all":
            print(
                f"  {row['region']:22s} {row['method']:12s} MDE {row['MDE_percent']:5.1f} %  "
                f"NRMSE {row['NRMSE_percent']:5.1f} %  (n={row['n']})"
            )
    if arguments.update_card:
        models.update_card(arguments.model, card_metrics(evaluation), arguments.models_dir)
        print(f"model card of {arguments.model!r} updated with the {arguments.split} table")
    return 0


def register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate-dose`` to the ``deepdosimetry`` command."""
    command = subparsers.add_parser(
        "evaluate-dose",
        help="held-out table (Li et al.'s Tables I and II): VDK, Monte Carlo on SPECT and the CNN against the "
        "Monte Carlo of the true activity",
    )
    command.add_argument("--data", required=True, help="simulate-dose dataset made with --mc-on-spect")
    source = command.add_mutually_exclusive_group()
    source.add_argument("--model", default=DEFAULT_MODEL, help="installed model name")
    source.add_argument("--checkpoint", help="a training checkpoint (e.g. CHECKPOINTS/" + BEST_CHECKPOINT + ")")
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--output", required=True, help="summary table (CSV; a .md and _samples.csv beside it)")
    command.add_argument("--split", default="test", choices=("train", "val", "test"), help="which cases")
    command.add_argument("--max-cases", type=int, help="only the first cases of the split")
    command.add_argument("--update-card", action="store_true", help="write the table into the model's card")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_evaluate)
