"""DL-PVC training data (seed 003, Leube et al., J Nucl Med 2024): random activity in body phantoms + SPECT.

Seed 003 trained on 10,000 pairs of a random, patient-like 177Lu activity distribution placed in
an XCAT body and its simulated SPECT (120 views of 30 s, MELP collimator), reconstructed four ways:
OSEM without resolution recovery (noRR: 10 iterations x 2 subsets) and with it (RR: 6 x 6), each
from noise-free and from noisy projections, at 4.8 mm voxels on a 128^3 grid.
:func:`simulate_pvc_case` makes one such case here: a synthetic torso
(:func:`DosimetryCore.phantoms.make_torso`, its CT and body outline only), a random activity
distribution in it (:func:`DosimetryCore.phantoms.random_activity`) and the reconstructions it asks for
(:func:`DosimetryCore.imaging.simulation.simulate_spect`; by default only what training and evaluation read: RR
from noisy projections, and its noise-free twin in the val split). :func:`write_dataset` writes many such cases
as one dataset folder, and :class:`PVCDataset` serves one split of it to
:func:`DosimetryCore.learning.training.train`.

Dataset folder::

    manifest.json           what was simulated: dataset seed, every case's seed and split, parameters
    case_00000/             one folder per case (written to a temporary folder, then renamed)
        truth.nrrd          true activity concentration (Bq/mL, float32)
        ct.nrrd             CT (HU) of the body the activity lies in
        masks.nrrd          region labelmap of the true activity (for iterative Yang PVC)
        osem_rr_noisy.nrrd  the reconstructions the manifest names (Bq/mL, float32, on the truth's grid): by
                            default this one, the network's input, and in val cases also osem_rr_noise_free
                            (IY-PVC's calibration); --reconstructions asks for others of the four
        case.json           the case's provenance (seeds, sampled totals, wall time)

All images share the grid (size^3 voxels of spacing_mm, identity direction, centred on the
rotation axis); arrays are (z, y, x). NRRD keeps the unit and provenance metadata, and every file
opens in Slicer.

Departures from seed 003: the body is this project's analytic torso (pelvis to lung apex), not
XCAT in three bed positions (no head), and scatter is neither simulated nor corrected (see
:mod:`DosimetryCore.imaging.simulation`).
"""

from DLPVCLib.dataset.activity_kinds import CASE_KINDS, region_labelmap
from DLPVCLib.dataset.case import simulate_pvc_case
from DLPVCLib.dataset.folder import (
    build_manifest,
    is_complete,
    manifest_sha256,
    read_manifest,
    simulate_command,
    write_dataset,
)
from DLPVCLib.dataset.layout import (
    ACTIVE_FRACTION,
    CASE_IMAGES,
    CASE_RECORD,
    DEFAULT_ACQUISITION,
    DEFAULT_RECONSTRUCTIONS,
    MANIFEST,
    MANIFEST_FORMAT,
    RECONSTRUCTIONS,
    SHAPE_DIAMETER_MM,
    SPLIT_FRACTIONS,
    SPLITS,
    TOTAL_ACTIVITY_RANGE_MBQ,
    PVCCase,
    WriteResult,
    case_images,
    manifest_reconstructions,
    noise_free_twin,
    split_reconstructions,
)
from DLPVCLib.dataset.seeds import case_sub_seeds, split_of
from DLPVCLib.dataset.torch_data import PVCDataset
from DosimetryCore.learning.case_folder import case_seeds

__all__ = [
    "ACTIVE_FRACTION",
    "CASE_KINDS",
    "CASE_IMAGES",
    "CASE_RECORD",
    "DEFAULT_ACQUISITION",
    "DEFAULT_RECONSTRUCTIONS",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "PVCCase",
    "PVCDataset",
    "RECONSTRUCTIONS",
    "SHAPE_DIAMETER_MM",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "TOTAL_ACTIVITY_RANGE_MBQ",
    "WriteResult",
    "build_manifest",
    "case_images",
    "case_seeds",
    "case_sub_seeds",
    "is_complete",
    "manifest_reconstructions",
    "manifest_sha256",
    "noise_free_twin",
    "read_manifest",
    "region_labelmap",
    "simulate_command",
    "simulate_pvc_case",
    "split_of",
    "split_reconstructions",
    "write_dataset",
]
