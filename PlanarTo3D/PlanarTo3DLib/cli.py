"""PlanarTo3D commands: ``train planar3d`` (entry point ``deepdosimetry.training``) and ``evaluate-planar``
(``deepdosimetry.commands``).

deepdosimetry train planar3d --out CHECKPOINTS [--patients N] [--variations V] [--epochs E] [--pet-conditioning]
                            [--save-model NAME]
deepdosimetry evaluate-planar --model NAME [--diffusion-model NAME [--samples K] [--steps N] [--start-from-pet T]]
                              [--patients N] [--variations V] [--epochs E] --output T.csv [--update-card]
deepdosimetry train planar3d-diffusion --out CHECKPOINTS [--patients N] [--variations V] [--epochs E]
                                       [--ct-conditioning] [--pet-conditioning] [--save-model NAME]
deepdosimetry planar-to-3d --planar FILE [FILE] --ct CT --pet PET --seg SEG --sensitivity-cps-per-mbq S
                           [--method resunet|diffusion [--samples K] [--steps N] [--eta ETA] [--start-from-pet T]
                           [--uncertainty SD.nrrd]]
                           [--model NAME] [--fine-tune DIR [--variations N] [--epochs E]] --output A.nrrd
                           [--table T.csv] [--figure F.png]
"""

from __future__ import annotations

import argparse
import shlex
import sys

from DosimetryCore.core.progress import terminal_progress
from DosimetryCore.io.outputs import check_outputs
from DosimetryCore.learning import models
from DosimetryCore.learning.distributed import is_main_process

DEFAULT_MODEL = "planar3d-resunet"
DEFAULT_DIFFUSION_MODEL = "planar3d-diffusion"


def _run_train(arguments: argparse.Namespace) -> int:
    from .train import card_fields as train_card_fields
    from .train import train_generic

    check_outputs({}, {}, {"--out": arguments.out})
    if arguments.save_model:
        models.check_new_model_name(arguments.save_model, arguments.models_dir, arguments.overwrite)
    model, summary = train_generic(
        arguments.out, patients=arguments.patients, variations=arguments.variations,
        val_patients=arguments.val_patients, epochs=arguments.epochs, batch_size=arguments.batch_size,
        lr=arguments.lr, seed=arguments.seed, pet_conditioning=arguments.pet_conditioning, device=arguments.device,
        resume=arguments.resume, progress=terminal_progress(), command=shlex.join(["deepdosimetry", *sys.argv[1:]]),
    )  # fmt: skip
    return _report_and_save(arguments, model, train_card_fields(summary), summary)


def _report_and_save(arguments: argparse.Namespace, model, fields: dict, summary: dict) -> int:
    """Print a generic training run's best epoch and install the model with its card under ``--save-model``;
    under torchrun, rank 0 alone."""
    if not is_main_process():
        return 0
    result = summary["result"]
    print(f"best validation loss {result['best_val_loss']:.4g} at epoch {result['best_epoch']} "
          f"({result['wall_time_s']:.0f} s)")  # fmt: skip
    if arguments.save_model:
        folder = models.save_model(model, arguments.save_model, fields, arguments.models_dir, arguments.overwrite)
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
    command.add_argument("--pet-conditioning", action="store_true",
                         help="give the network the pre-therapy PET as a fourth input channel")  # fmt: skip
    command.add_argument("--seed", type=int, default=0, help="population, weights and order seed")
    command.add_argument("--resume", action="store_true", help="continue from --out/latest.pt")
    command.add_argument("--save-model", help="install the trained model under this name in the models folder")
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--overwrite", action="store_true", help="replace an installed model of that name")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_train)


def _run_train_diffusion(arguments: argparse.Namespace) -> int:
    from .diffusion_train import card_fields as diffusion_card_fields
    from .diffusion_train import train_generic_prior

    check_outputs({}, {}, {"--out": arguments.out})
    if arguments.save_model:
        models.check_new_model_name(arguments.save_model, arguments.models_dir, arguments.overwrite)
    prior, summary = train_generic_prior(
        arguments.out, patients=arguments.patients, variations=arguments.variations,
        val_patients=arguments.val_patients, epochs=arguments.epochs, batch_size=arguments.batch_size,
        lr=arguments.lr, seed=arguments.seed, ct_conditioning=arguments.ct_conditioning,
        pet_conditioning=arguments.pet_conditioning, device=arguments.device, resume=arguments.resume,
        progress=terminal_progress(),
        command=shlex.join(["deepdosimetry", *sys.argv[1:]]),
    )  # fmt: skip
    return _report_and_save(arguments, prior, diffusion_card_fields(summary), summary)


def register_train_diffusion(train_subparsers: argparse._SubParsersAction) -> None:
    """Add ``planar3d-diffusion`` to ``deepdosimetry train``."""
    from .diffusion_train import GENERIC_DEFAULTS as D

    command = train_subparsers.add_parser(
        "planar3d-diffusion",
        help="train the generic PlanarTo3D slice diffusion prior on a synthetic population (DDS sampling)",
    )
    command.add_argument("--out", required=True, help="checkpoint folder (latest.pt, best.pt, summary, loss curve)")
    command.add_argument("--patients", type=int, default=D["patients"], help="virtual patients for training")
    command.add_argument("--variations", type=int, default=D["variations"], help="variations of each patient")
    command.add_argument("--val-patients", type=int, default=D["val_patients"], help="virtual patients to validate")
    command.add_argument("--epochs", type=int, default=D["epochs"], help="epochs (passes over the axial slices)")
    command.add_argument("--batch-size", type=int, default=D["batch_size"], help="slices per batch")
    command.add_argument("--lr", type=float, default=D["lr"], help="Adam learning rate (ReduceLROnPlateau)")
    command.add_argument("--ct-conditioning", action="store_true",
                         help="give the prior the attenuation slice as an input channel")  # fmt: skip
    command.add_argument("--pet-conditioning", action="store_true",
                         help="give the prior the pre-therapy PET slice as an input channel")  # fmt: skip
    command.add_argument("--seed", type=int, default=0, help="population, weights and order seed")
    command.add_argument("--resume", action="store_true", help="continue from --out/latest.pt")
    command.add_argument("--save-model", help="install the trained prior under this name in the models folder")
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--overwrite", action="store_true", help="replace an installed model of that name")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_train_diffusion)


def _run_evaluate(arguments: argparse.Namespace) -> int:
    from DosimetryCore.io.tables import write_csv, write_markdown

    from .diffusion_sampling import SamplingSettings
    from .evaluation import evaluate_planar, held_out_seeds
    from .logic import load_method_model

    check_outputs({}, {"--output": arguments.output})
    model, card = load_method_model("resunet", arguments.model, arguments.models_dir)
    prior = prior_card = None
    if arguments.diffusion_model:
        prior, prior_card = load_method_model("diffusion", arguments.diffusion_model, arguments.models_dir)
    sampling = SamplingSettings(steps=arguments.steps, samples=arguments.samples, start_step=arguments.start_from_pet)
    rows, means = evaluate_planar(
        held_out_seeds(arguments.patients), model, variations=arguments.variations, epochs=arguments.epochs,
        prior=prior, sampling=sampling, device=arguments.device, progress=terminal_progress(),
    )  # fmt: skip
    path = write_csv(means, arguments.output)
    write_csv(rows, path.with_name(path.stem + "_patients.csv"))
    markdown = write_markdown(means, path.with_suffix(".md"))
    print(markdown.read_text())
    if arguments.update_card:
        protocol = {"held_out_patients": arguments.patients, "fine_tuning_variations": arguments.variations,
                    "fine_tuning_epochs": arguments.epochs,
                    "command": shlex.join(["deepdosimetry", *sys.argv[1:]])}  # fmt: skip
        if prior is not None:
            protocol["diffusion_sampling"] = sampling.record()
        for network, network_card in ((model, card), (prior, prior_card)):
            if network is None:
                continue
            metrics = {"metrics": {"held_out": means, "protocol": protocol}}
            models.update_card(network_card["name"], metrics, arguments.models_dir)
            print(f"model card of {network_card['name']!r} updated with the held-out table")  # fmt: skip
    return 0


def _start_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--start-from-pet", type=int, metavar="T", help="diffusion: start DDIM from the pre-therapy "
                         "PET noised to timestep T (1-999, e.g. 300) instead of pure noise")  # fmt: skip


def register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate-planar`` to the ``deepdosimetry`` command."""
    from .train import FINE_TUNE_DEFAULTS as F

    command = subparsers.add_parser(
        "evaluate-planar",
        help="held-out virtual patients: generic and patient-specific ResUNet (and diffusion) against conjugate view "
        "(MAE, SSIM, organ activity errors, planar consistency, run time)",
    )
    command.add_argument("--model", default=DEFAULT_MODEL, help="installed generic model")
    command.add_argument("--diffusion-model", help=f"add generic and patient-specific diffusion rows with this "
                         f"installed slice prior (e.g. {DEFAULT_DIFFUSION_MODEL})")  # fmt: skip
    command.add_argument("--samples", type=int, default=4, help="diffusion: samples per patient (their mean is scored)")
    command.add_argument("--steps", type=int, default=50, help="diffusion: DDIM steps")
    _start_argument(command)
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--patients", type=int, default=10, help="held-out virtual patients")
    command.add_argument("--variations", type=int, default=F["variations"], help="PET variations for fine-tuning")
    command.add_argument("--epochs", type=int, default=F["epochs"], help="fine-tuning epochs")
    command.add_argument("--output", required=True, help="per-method means (CSV; _patients.csv and .md beside it)")
    command.add_argument("--update-card", action="store_true", help="write the table into the model's card")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_evaluate)


def _run_planar_to_3d(arguments: argparse.Namespace) -> int:
    from DosimetryCore import io
    from DosimetryCore.core.provenance import read, stamp, stamp_command
    from DosimetryCore.io.labels import label_names
    from DosimetryCore.io.tables import write_csv

    from .logic import PATIENT_MODEL, load_method_model
    from .patient import camera_for, patient_card_fields, write_figure

    diffusion = arguments.method == "diffusion"
    if arguments.uncertainty and not diffusion:
        raise ValueError("--uncertainty: the standard deviation map comes from the samples of --method diffusion")
    inputs = {**{f"--planar {i + 1}": p for i, p in enumerate(arguments.planar)}, "--ct": arguments.ct,
              "--pet": arguments.pet, "--seg": arguments.seg}  # fmt: skip
    outputs = {"--output": arguments.output, "--table": arguments.table, "--figure": arguments.figure,
               "--uncertainty": arguments.uncertainty}  # fmt: skip
    check_outputs(inputs, outputs, {"--fine-tune": arguments.fine_tune} if arguments.fine_tune else {})
    generic, card = load_method_model(arguments.method, arguments.model, arguments.models_dir)
    pair = io.read_planar(arguments.planar)
    ct, pet, seg = io.read_image(arguments.ct), io.read_image(arguments.pet), io.read_image(arguments.seg)
    camera = camera_for(arguments.sensitivity_cps_per_mbq, pair.anterior.frame_duration_s, arguments.collimator)
    model_record = {"generic_model": card["name"], "generic_model_sha256": card["weights_sha256"]}
    views = (_counts(pair.anterior.image), _counts(pair.posterior.image), pair.anterior.image.GetSpacing(), ct, pet,
             seg, label_names(seg), generic)  # fmt: skip
    common = {"camera": camera, "fine_tune_dir": arguments.fine_tune, "variations": arguments.variations,
              "epochs": arguments.epochs, "seed": arguments.seed, "model_record": model_record,
              "device": arguments.device, "progress": terminal_progress()}  # fmt: skip
    if diffusion:
        from .diffusion_patient import planar_to_3d_diffusion
        from .diffusion_sampling import SamplingSettings

        sampling = SamplingSettings(steps=arguments.steps, eta=arguments.eta, samples=arguments.samples,
                                    seed=arguments.seed, start_step=arguments.start_from_pet)  # fmt: skip
        result = planar_to_3d_diffusion(*views, sampling=sampling, **common)
    else:
        from .patient import planar_to_3d

        result = planar_to_3d(*views, **common)
    images = [result.activity, *([result.uncertainty] if diffusion else [])]
    if arguments.fine_tune:
        fields = patient_card_fields(card, result.fine_tuning)
        folder = models.save_model(result.model, PATIENT_MODEL, fields, arguments.fine_tune, overwrite=True)
        sha256 = models.read_card(PATIENT_MODEL, arguments.fine_tune)["weights_sha256"]
        patient_model = {"patient_model": str(folder), "patient_model_sha256": sha256}
        for image in images:
            stamp(image, {**read(image), **patient_model})
    for image in images:
        stamp_command(image, "deepdosimetry planar-to-3d", inputs)
    alignment = result.alignment
    print(f"{io.write_image(result.activity, arguments.output)}: activity (Bq/mL) on the CT grid")
    if arguments.uncertainty:
        print(f"{io.write_image(result.uncertainty, arguments.uncertainty)}: standard deviation of the "
              f"{arguments.samples} samples (Bq/mL)")  # fmt: skip
    print(f"  planar images placed: shift ({alignment.translation_mm[0]:.1f}, {alignment.translation_mm[1]:.1f}) mm, "
          f"rotation {alignment.rotation_deg:.1f} deg, correlation {alignment.correlation_before:.2f} -> "
          f"{alignment.correlation_after:.2f}; planar consistency {100 * result.consistency:.1f} %")  # fmt: skip
    for row in result.rows:
        spread = f" +- {row['activity_sd_MBq']:.3g}" if "activity_sd_MBq" in row else ""
        print(f"  {row['organ']:20s} {row['activity_MBq']:10.4g}{spread} MBq   conjugate view "
              f"{row['conjugate_view_MBq']:10.4g} MBq")  # fmt: skip
    if arguments.table:
        print(f"{write_csv(result.rows, arguments.table)}: per-organ table")
    if arguments.figure:
        print(f"{write_figure(result, alignment.counts, arguments.figure)}: maximum-intensity projections")
    return 0


def _counts(image):
    """A 2D planar image's counts as a float32 array (rows, columns)."""
    import numpy as np
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image).astype(np.float32)


def register_planar_to_3d(subparsers: argparse._SubParsersAction) -> None:
    """Add ``planar-to-3d`` to the ``deepdosimetry`` command."""
    from .train import FINE_TUNE_DEFAULTS as F

    command = subparsers.add_parser(
        "planar-to-3d",
        help="3D activity from anterior/posterior planar images with the pre-therapy PET/CT (Lopez-Montes et al.)",
    )
    command.add_argument("--planar", nargs="+", required=True, help="NM planar DICOM: one file with both views or two")
    command.add_argument("--ct", required=True, help="the patient's CT (HU)")
    command.add_argument("--pet", required=True, help="the pre-therapy PET on the CT's frame (Bq/mL or SUV)")
    command.add_argument("--seg", required=True, help="organ labelmap (with label names) on or over the CT")
    command.add_argument("--sensitivity-cps-per-mbq", type=float, required=True,
                         help="the camera's planar sensitivity, one head, in the 208 keV window")  # fmt: skip
    command.add_argument("--collimator", help="collimator of the camera (default SIEMENS-MELP)")
    command.add_argument("--method", choices=("resunet", "diffusion"), default="resunet",
                         help="the supervised ResUNet, or DDS sampling of the slice diffusion prior with planar "
                         "consistency (several samples: mean and standard deviation)")  # fmt: skip
    command.add_argument("--model", help=f"installed generic model (default {DEFAULT_MODEL}, with --method diffusion "
                         f"{DEFAULT_DIFFUSION_MODEL})")  # fmt: skip
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--samples", type=int, default=4, help="diffusion: samples K (mean and standard deviation)")
    command.add_argument("--steps", type=int, default=50, help="diffusion: DDIM steps")
    command.add_argument("--eta", type=float, default=0.0, help="diffusion: DDIM eta (noise of the re-noising)")
    _start_argument(command)
    command.add_argument("--uncertainty", help="diffusion: per-voxel standard deviation (Bq/mL) on the CT grid")
    command.add_argument("--fine-tune", metavar="DIR", help="fine-tune on the patient's PET variations; the "
                         "checkpoints and the patient model (with its card) go into DIR")  # fmt: skip
    command.add_argument("--variations", type=int, default=F["variations"], help="PET variations for fine-tuning")
    command.add_argument("--epochs", type=int, default=F["epochs"], help="fine-tuning epochs")
    command.add_argument("--seed", type=int, default=0, help="seed of the variations, the fine-tuning and the first "
                         "diffusion sample (the others: seed + 1, ...)")  # fmt: skip
    command.add_argument("--output", required=True, help="activity image (Bq/mL) on the CT grid (diffusion: the mean)")
    command.add_argument("--table", help="per-organ table (CSV) with the conjugate-view estimate")
    command.add_argument("--figure", help="maximum-intensity projections beside the measured images (PNG)")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_planar_to_3d)


def _run_demo(arguments: argparse.Namespace) -> int:
    from .demo import run_planar_demo

    check_outputs({}, {}, {"--out": arguments.out})
    result = run_planar_demo(arguments.out, seed=arguments.seed, model_name=arguments.model,
                             models_dir=arguments.models_dir, variations=arguments.variations, epochs=arguments.epochs,
                             device=arguments.device, progress=terminal_progress())  # fmt: skip
    print(f"{arguments.out}: activities, organs.csv, metrics.csv, mip.png, inputs/ ({result['wall_time_s']:.0f} s)")
    for row in result["metrics"]:
        image = f"MAE {row['mae_norm']:.3f}  SSIM {row['ssim']:.3f}  " if "ssim" in row else " " * 27
        print(f"  {row['method']:26s} {image}mean |organ error| {row['organ_abs_error_%']:5.1f} %")
    return 0


def register_demo(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo-planar`` to the ``deepdosimetry`` command."""
    from .demo import DEMO_SEED

    command = subparsers.add_parser(
        "demo-planar",
        help="one virtual patient through PlanarTo3D: generic and patient-specific ResUNet against the truth and "
        "conjugate view",
    )
    command.add_argument("--out", default="demo-output/planar", help="output folder")
    command.add_argument("--seed", type=int, default=DEMO_SEED, help="seed of the virtual patient")
    command.add_argument("--model", default=DEFAULT_MODEL, help="installed generic model")
    command.add_argument("--models-dir", help="models folder (default: the resources' Models)")
    command.add_argument("--variations", type=int, default=20, help="PET variations for the patient model")
    command.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    command.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    command.set_defaults(handler=_run_demo)
