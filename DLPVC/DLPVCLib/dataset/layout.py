"""The layout of a DL-PVC dataset folder: file names, reconstructions, splits, sampling ranges, records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import SimpleITK as sitk

from DosimetryCore.imaging import simulation

MANIFEST = "manifest.json"
CASE_RECORD = "case.json"
MANIFEST_FORMAT = 1

RECONSTRUCTIONS = simulation.OSEM_IMAGES
"""The four SPECT reconstructions of seed 003 (noRR_nf, noRR_n, RR_nf, RR_n): the possible network inputs."""

DEFAULT_RECONSTRUCTIONS = ("osem_rr_noisy",)
"""What a new dataset holds unless asked for more: the network's input, RR from noisy projections (seed 003's
RR_n, its clinical setting). Validation cases also hold its noise-free twin (:func:`split_reconstructions`), from
which the evaluation calibrates IY-PVC's FWHM. RR OSEM takes most of a case's time, so the three images nothing
reads would more than double it."""

CASE_IMAGES = ("truth", "ct", "masks", *RECONSTRUCTIONS)
"""The images a case can hold, by file stem (``<stem>.nrrd``); a manifest names the ones its cases hold
(:func:`case_images`)."""


def noise_free_twin(reconstruction: str) -> str:
    """The reconstruction of the same kind from noise-free projections (itself when it is noise-free)."""
    return reconstruction.replace("_noisy", "_noise_free")


def manifest_reconstructions(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The reconstructions a dataset was asked to hold: the manifest's ``reconstructions``, or all four for a
    manifest written before datasets could hold fewer."""
    return simulation.check_reconstructions(manifest.get("reconstructions", RECONSTRUCTIONS))


def split_reconstructions(manifest: dict[str, Any], split: str) -> tuple[str, ...]:
    """The reconstructions the cases of ``split`` hold: the dataset's, and in the val split their noise-free
    twins too (the IY-PVC calibration of :func:`DLPVCLib.evaluation.calibrate_iy_fwhm` reads them there)."""
    held = manifest_reconstructions(manifest)
    return simulation.check_reconstructions({*held, *map(noise_free_twin, held)}) if split == "val" else held


def case_images(manifest: dict[str, Any], split: str) -> tuple[str, ...]:
    """The images (file stems) every case of ``split`` of a dataset holds."""
    return ("truth", "ct", "masks", *split_reconstructions(manifest, split))


SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
"""Expected share of cases in train, val and test (seed 003 held out 500 of 10,000 cases, 5 %, for testing)."""

TOTAL_ACTIVITY_RANGE_MBQ = (300.0, 3000.0)
"""Activity in the field of view (MBq), drawn log-uniformly per case (see :func:`simulate_pvc_case`)."""

ACTIVE_FRACTION = (0.01, 0.1)
"""Share of the body volume that holds activity, drawn uniformly per case (see :func:`simulate_pvc_case`)."""

SHAPE_DIAMETER_MM = (9.6, 240.0)
"""Random-shape diameters (mm): seed 003's 4 to 100 voxels of 2.4 mm."""

DEFAULT_ACQUISITION = simulation.Acquisition()
"""Seed 003's protocol: 120 views x 30 s, MELP collimator, noRR OSEM 10 x 2, RR OSEM 6 x 6."""

_SPLIT_SALT = "DLPVC split"


@dataclass
class PVCCase:
    """One simulated case: ``images`` keyed by :data:`CASE_IMAGES` and its JSON ``provenance``."""

    images: dict[str, sitk.Image]
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class WriteResult:
    """What :func:`write_dataset` did: the manifest, the cases it simulated (with wall time in s) and skipped."""

    manifest: dict[str, Any]
    simulated: dict[str, float]
    skipped: list[str]
