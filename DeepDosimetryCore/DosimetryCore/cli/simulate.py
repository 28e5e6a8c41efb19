"""Sub-commands ``simulate`` and ``simulate-planar`` of the ``deepdosimetry`` command."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from DosimetryCore import io
from DosimetryCore.core.progress import terminal_progress
from DosimetryCore.imaging import simulation
from DosimetryCore.imaging.collimators import COLLIMATORS

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


def _run_simulate(arguments: argparse.Namespace) -> int:
    acquisition = replace(simulation.Acquisition(), collimator=arguments.collimator, views=arguments.views)
    case = simulation.simulate_case(
        arguments.seed,
        arguments.size,
        arguments.spacing_mm,
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
    activity = io.read_image(arguments.activity)
    ct = io.read_image(arguments.ct)
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
    output = Path(arguments.out)
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
    simulate.add_argument("--out", required=True, help="output folder")
    simulate.add_argument("--seed", type=int, required=True, help="case seed (phantom and noise)")
    simulate.add_argument("--size", type=int, default=128, help="voxels per axis (default 128)")
    simulate.add_argument("--spacing-mm", type=float, default=4.8, help="voxel size in mm (default 4.8)")
    simulate.add_argument("--tracer", choices=("PSMA", "DOTATATE"), default="PSMA")
    simulate.add_argument("--collimator", choices=sorted(COLLIMATORS), default="SIEMENS-MELP")
    simulate.add_argument("--views", type=int, default=simulation.Acquisition.views, help="SPECT views (default 120)")
    simulate.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    simulate.set_defaults(handler=_run_simulate)

    planar = subparsers.add_parser("simulate-planar", help="anterior/posterior planar images of an activity map")
    planar.add_argument("--activity", required=True, help="activity concentration image (Bq/mL)")
    planar.add_argument("--ct", required=True, help="CT image (HU) on the activity grid")
    planar.add_argument("--out", required=True, help="output folder for anterior.nrrd and posterior.nrrd")
    planar.add_argument("--collimator", choices=sorted(COLLIMATORS), default="SIEMENS-MELP")
    planar.add_argument("--counts-noise", action="store_true", help="Poisson counts instead of expected counts")
    planar.add_argument("--seed", type=int, default=0, help="seed of the Poisson noise")
    planar.add_argument(
        "--sensitivity-cps-per-mbq", dest="sensitivity_cps_per_MBq", type=float,
        default=simulation.Acquisition.sensitivity_cps_per_MBq,
    )
    planar.add_argument("--time-s", type=float, default=simulation.Acquisition.planar_time_s, help="acquisition time")
    planar.add_argument(
        "--distance-mm", type=float, default=simulation.Acquisition.planar_distance_mm,
        help="distance from the image centre to each collimator face",
    )
    planar.add_argument("--device", default=None, help="cpu, cuda or auto (default)")
    planar.set_defaults(handler=_run_simulate_planar)
