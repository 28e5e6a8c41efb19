"""Sub-commands ``simulate`` and ``simulate-planar`` of the ``deepdosimetry`` command."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import SimpleITK as sitk

from DosimetryCore import io
from DosimetryCore.core.progress import terminal_progress
from DosimetryCore.imaging import simulation
from DosimetryCore.imaging.collimators import COLLIMATORS
from DosimetryCore.io.outputs import check_outputs
from DosimetryCore.physics.ct import check_ct_hu

SCENE_VOLUMES = (
    "ct", "activity", "mu", "osem_norr_noise_free", "osem_norr_noisy", "osem_rr_noise_free", "osem_rr_noisy"
)


def _write_scene(case: simulation.SimulatedCase, path: Path) -> Path:
    """The case as a Slicer scene: volumes, the organ segmentation and the planar views."""
    from DosimetryCore.io import mrml

    scene = mrml.new_scene()
    for name in SCENE_VOLUMES:
        mrml.add_volume_node(scene, case.images[name], name)
    mrml.add_segmentation_node(scene, case.images["labels"], case.label_names, "organs")
    for view in ("anterior", "posterior"):
        mrml.add_volume_node(scene, io.planar_volume(case.images[view]), f"planar {view}")
    return mrml.save_scene_bundle(scene, path)


DEFAULT_SPACING_MM = 4.8
TORSO_FIELD_MM = 128 * DEFAULT_SPACING_MM
"""Field of view (mm per axis) that holds the synthetic torso: 128 voxels of 4.8 mm."""
MAX_SIZE = 512
"""Largest --size: 512^3 voxels of float32 images and projections already need tens of GB."""


def _spacing_for(size: int, spacing_mm: float | None) -> float:
    """The voxel size: the one given, else the larger of 4.8 mm and what makes ``size`` voxels hold the torso."""
    if spacing_mm is not None:
        if not spacing_mm > 0:
            raise ValueError(f"--spacing-mm: expected a positive voxel size in mm, got {spacing_mm:g}")
        if size * spacing_mm < TORSO_FIELD_MM:
            raise ValueError(
                f"--spacing-mm: {size} voxels of {spacing_mm:g} mm span {size * spacing_mm:.0f} mm, less than the "
                f"{TORSO_FIELD_MM:.0f} mm the torso needs; use --spacing-mm {TORSO_FIELD_MM / size:.4g} or more, or "
                "leave it out to have it derived"
            )
        return spacing_mm
    return max(DEFAULT_SPACING_MM, TORSO_FIELD_MM / size)


def _check_simulate(arguments: argparse.Namespace) -> float:
    """Check the arguments of ``simulate`` before any work; return the voxel size in mm."""
    if not 16 <= arguments.size <= MAX_SIZE:
        raise ValueError(f"--size: expected 16 to {MAX_SIZE} voxels per axis, got {arguments.size}")
    defaults = simulation.Acquisition()
    step = math.lcm(defaults.norr_subsets, defaults.rr_subsets)
    if arguments.views < step or arguments.views % step:
        raise ValueError(
            f"--views: expected a positive multiple of {step} (the OSEM subsets: {defaults.norr_subsets} without and "
            f"{defaults.rr_subsets} with resolution recovery), got {arguments.views}"
        )
    if arguments.seed < 0:
        raise ValueError(f"--seed: expected a non-negative integer, got {arguments.seed}")
    output = Path(arguments.out)
    check_outputs({}, {}, {"--out": output})
    return _spacing_for(arguments.size, arguments.spacing_mm)


def _run_simulate(arguments: argparse.Namespace) -> int:
    spacing_mm = _check_simulate(arguments)
    if arguments.spacing_mm is None:
        print(f"--spacing-mm not given: {spacing_mm:g} mm, so that {arguments.size} voxels hold the torso")
    acquisition = replace(simulation.Acquisition(), collimator=arguments.collimator, views=arguments.views)
    case = simulation.simulate_case(
        arguments.seed,
        arguments.size,
        spacing_mm,
        arguments.tracer,
        acquisition,
        device=arguments.device,
        progress=terminal_progress(),
    )
    output = Path(arguments.out)
    for name, image in case.images.items():
        io.write_image(image, output / f"{name}.nrrd")
    (output / "provenance.json").write_text(json.dumps(case.provenance, indent=2, sort_keys=True) + "\n")
    scene = _write_scene(case, output / "case.mrb")
    print(f"wrote {len(case.images)} images, provenance.json and {scene} to {output}")
    return 0


def _run_simulate_planar(arguments: argparse.Namespace) -> int:
    output = Path(arguments.out)
    check_outputs(
        {"--activity": arguments.activity, "--ct": arguments.ct},
        {"anterior.nrrd": output / "anterior.nrrd", "posterior.nrrd": output / "posterior.nrrd"},
        {"--out": output},
    )
    positive = {
        "--sensitivity-cps-per-mbq": arguments.sensitivity_cps_per_MBq,
        "--time-s": arguments.time_s,
        "--distance-mm": arguments.distance_mm,
    }
    for name, value in positive.items():
        if not value > 0:
            raise ValueError(f"{name}: expected a positive value, got {value:g}")
    activity = io.read_image(arguments.activity)
    ct = io.read_image(arguments.ct)
    check_ct_hu(sitk.GetArrayViewFromImage(ct), f"--ct {arguments.ct}")
    acquisition = replace(
        simulation.Acquisition(),
        collimator=arguments.collimator,
        sensitivity_cps_per_MBq=arguments.sensitivity_cps_per_MBq,
        planar_time_s=arguments.time_s,
        planar_distance_mm=arguments.distance_mm,
    )
    anterior, posterior = simulation.simulate_planar_images(
        activity, ct, acquisition, noise=arguments.counts_noise, seed=arguments.seed, device=arguments.device
    )
    for name, image in (("anterior", anterior), ("posterior", posterior)):
        path = io.write_image(image, output / f"{name}.nrrd")
        print(f"{name}: {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate`` and ``simulate-planar`` to the ``deepdosimetry`` command."""
    simulate = subparsers.add_parser(
        "simulate",
        help="simulate one case: phantom CT/labels/activity, mu map, planar ANT/POST, SPECT projections, OSEM",
    )
    simulate.add_argument("--out", required=True, help="output folder (created; not a file)")
    simulate.add_argument("--seed", type=int, required=True, help="case seed (phantom and noise), >= 0")
    simulate.add_argument("--size", type=int, default=128, help=f"voxels per axis, 16 to {MAX_SIZE}")
    simulate.add_argument(
        "--spacing-mm", type=float,
        help=f"voxel size in mm (default: {DEFAULT_SPACING_MM:g} mm, or larger so that --size voxels span the "
        f"{TORSO_FIELD_MM:.0f} mm the torso needs, e.g. 9.6 mm for --size 64)",
    )  # fmt: skip
    simulate.add_argument("--tracer", choices=("PSMA", "DOTATATE"), default="PSMA", help="177Lu-labelled tracer")
    simulate.add_argument("--collimator", choices=sorted(COLLIMATORS), default="SIEMENS-MELP", help="collimator")
    simulate.add_argument(
        "--views", type=int, default=simulation.Acquisition.views,
        help="SPECT views over 360 degrees, a multiple of 6 (the OSEM subsets)",
    )  # fmt: skip
    simulate.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    simulate.set_defaults(handler=_run_simulate)

    planar = subparsers.add_parser("simulate-planar", help="anterior/posterior planar images of an activity map")
    planar.add_argument("--activity", required=True, help="activity concentration image (Bq/mL)")
    planar.add_argument("--ct", required=True, help="CT image (HU) on the activity grid")
    planar.add_argument("--out", required=True, help="output folder for anterior.nrrd and posterior.nrrd (counts)")
    planar.add_argument("--collimator", choices=sorted(COLLIMATORS), default="SIEMENS-MELP", help="collimator")
    planar.add_argument("--counts-noise", action="store_true", help="Poisson counts instead of expected counts")
    planar.add_argument("--seed", type=int, default=0, help="seed of the Poisson noise")
    planar.add_argument(
        "--sensitivity-cps-per-mbq", dest="sensitivity_cps_per_MBq", type=float,
        default=simulation.Acquisition.sensitivity_cps_per_MBq,
        help="planar sensitivity of the camera in counts per second per MBq",
    )  # fmt: skip
    planar.add_argument(
        "--time-s", type=float, default=simulation.Acquisition.planar_time_s, help="acquisition time in seconds"
    )
    planar.add_argument(
        "--distance-mm", type=float, default=simulation.Acquisition.planar_distance_mm,
        help="distance in mm from the image centre to each collimator face",
    )  # fmt: skip
    planar.add_argument("--device", help="cpu, cuda, ... (default: cuda when available)")
    planar.set_defaults(handler=_run_simulate_planar)
