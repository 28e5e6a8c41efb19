"""PlanarTo3D commands: ``train planar3d`` (entry point ``deepdosimetry.training``) and ``evaluate-planar``
(``deepdosimetry.commands``).

deepdosimetry train planar3d --out CHECKPOINTS [--patients N] [--variations V] [--epochs E] [--save-model NAME]
deepdosimetry evaluate-planar --model NAME [--patients N] [--variations V] [--epochs E] --output T.csv
                              [--update-card]
"""

from __future__ import annotations

import argparse
import shlex
import sys

from DosimetryCore.core.progress import terminal_progress
from DosimetryCore.io.outputs import check_outputs
from DosimetryCore.learning import models

DEFAULT_MODEL = "planar3d-resunet"


def card_fields(summary: dict) -> dict:
    """Model-card fields from a generic training summary (held-out metrics: ``evaluate-planar --update-card``)."""
    return {
        "architecture": summary["model"]["config"],
        "method": summary["method"],
        "normalisation": summary["model"]["normalisation"],
        "grid": summary["grid"],
        "camera": summary["camera"],
        "training_data": summary["data"],
        "training_command": summary["command"],
        "training": summary["training"],
        "hardware": summary["hardware"],
        "wall_time_s": summary["result"]["wall_time_s"],
        "epochs": summary["result"]["epochs_run"],
        "best_epoch": summary["result"]["best_epoch"],
        "loss_history": [
            {k: entry[k] for k in ("epoch", "train_loss", "val_loss", "lr")} for entry in summary["result"]["history"]
        ],
        "departures_from_the_paper": [
            f"grid {summary['grid']['spacing_mm']:g} mm, {summary['grid']['shape_zyx']} (z, y, x): the paper's "
            "128 x 128 x 175 voxels of 5.7 mm do not train on 2 CPU cores",
            "population: the project's analytic torso phantoms (177Lu-PSMA and -DOTATATE uptake), not 52 18F-PSMA "
            "patients; planar images without scatter",
            f"ResUNet of {summary['model']['config']['features']} feature maps (pytorch-3dunet's default is 64 to "
            "1024)",
        ],
        "versions": summary["versions"],
        "metrics": {},
        "baselines": {},
    }  # fmt: skip


def _run_train(arguments: argparse.Namespace) -> int:
    from .train import train_generic

    check_outputs({}, {}, {"--out": arguments.out})
    if arguments.save_model:
        models.check_new_model_name(arguments.save_model, arguments.models_dir, arguments.overwrite)
    model, summary = train_generic(
        arguments.out, patients=arguments.patients, variations=arguments.variations,
        val_patients=arguments.val_patients, epochs=arguments.epochs, batch_size=arguments.batch_size,
        lr=arguments.lr, seed=arguments.seed, device=arguments.device, resume=arguments.resume,
        progress=terminal_progress(), command=shlex.join(["deepdosimetry", *sys.argv[1:]]),
    )  # fmt: skip
    result = summary["result"]
    print(f"best validation loss {result['best_val_loss']:.4g} at epoch {result['best_epoch']} "
          f"({result['wall_time_s']:.0f} s)")  # fmt: skip
    if arguments.save_model:
        folder = models.save_model(model, arguments.save_model, card_fields(summary), arguments.models_dir,
                                   arguments.overwrite)  # fmt: skip
        print(f"model {arguments.save_model!r} written to {folder}; add its held-out table with evaluate-planar")
    return 0


def register_train(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``planar3d`` to ``deepdosimetry train``."""
    from .train import GENERIC_DEFAULTS as D

    command = train_subparsers.add_parser(
        "planar3d", help="train the generic PlanarTo3D ResUNet on a synthetic population (Lopez-Montes et al.)"
    )
    command.add_argument("--out", required=True, help="checkpoint folder (latest.pt, best.pt, summary, loss curve)")
    command.add_argument("--patients", type=int, default=D["patients"], help="virtual patients for training")
    command.add_argument("--variations", type=int, default=D["variations"], help="variations of each patient")
    command.add_argument("--val-patients", type=int, default=D["val_patients"], help="virtual patients to validate")
    command.add_argument("--epochs", type=int, default=D["epochs"], help="epochs in all (resumed ones count)")
    command.add_argument("--batch-size", type=int, default=D["batch_size"], help="volumes per batch")
    command.add_argument("--lr", type=float, default=D["lr"], help="Adam learning rate (ReduceLROnPlateau)")
    command.add_argument("--seed", type=int, default=0, help="population, weights and order seed")
    command.add_argument("--resume", action="store_true", help="continue from --out/latest.pt")
    command.add_argument("--save-model", help="install the trained model under this name in the models folder")
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--overwrite", action="store_true", help="replace an installed model of that name")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_train)


def _run_evaluate(arguments: argparse.Namespace) -> int:
    from DosimetryCore.io.tables import write_csv

    from .evaluation import evaluate_planar, held_out_seeds, write_markdown
    from .network import ResUNet3D

    check_outputs({}, {"--output": arguments.output})
    model, card = models.load_model(arguments.model, ResUNet3D.from_config, "cpu", arguments.models_dir)
    rows, means = evaluate_planar(
        held_out_seeds(arguments.patients), model, variations=arguments.variations, epochs=arguments.epochs,
        device=arguments.device, progress=terminal_progress(),
    )  # fmt: skip
    path = write_csv(means, arguments.output)
    write_csv(rows, path.with_name(path.stem + "_patients.csv"))
    markdown = write_markdown(means, path.with_suffix(".md"))
    print(markdown.read_text())
    if arguments.update_card:
        fields = {k: v for k, v in card.items() if k not in ("name", "weights_file", "weights_sha256", "format")}
        protocol = {"held_out_patients": arguments.patients, "fine_tuning_variations": arguments.variations,
                    "fine_tuning_epochs": arguments.epochs, "command": shlex.join(["deepdosimetry", *sys.argv[1:]])}
        fields["metrics"] = {"held_out": means, "protocol": protocol}  # fmt: skip
        models.save_model(model, arguments.model, fields, arguments.models_dir, True)
        print(f"model card of {arguments.model!r} updated with the held-out table")
    return 0


def register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate-planar`` to the ``deepdosimetry`` command."""
    from .train import FINE_TUNE_DEFAULTS as F

    command = subparsers.add_parser(
        "evaluate-planar",
        help="held-out virtual patients: generic and patient-specific ResUNet against conjugate view (MAE, SSIM, "
        "organ activity errors, planar consistency)",
    )
    command.add_argument("--model", default=DEFAULT_MODEL, help="installed generic model")
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--patients", type=int, default=10, help="held-out virtual patients")
    command.add_argument("--variations", type=int, default=F["variations"], help="PET variations for fine-tuning")
    command.add_argument("--epochs", type=int, default=F["epochs"], help="fine-tuning epochs")
    command.add_argument("--output", required=True, help="per-method means (CSV; _patients.csv and .md beside it)")
    command.add_argument("--update-card", action="store_true", help="write the table into the model's card")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_evaluate)
