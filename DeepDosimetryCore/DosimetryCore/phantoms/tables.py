"""Anatomy tables of the synthetic torso: labels, organ ellipsoids, profiles and the phantom types.

Coordinates are in the anatomical frame of :mod:`DosimetryCore.phantoms` (mm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

LABELS: dict[str, int] = {
    "body": 1,  # soft tissue, subcutaneous fat and everything not named below
    "lung_right": 2,
    "lung_left": 3,
    "liver": 4,
    "spleen": 5,
    "kidney_right_cortex": 6,
    "kidney_right_medulla": 7,
    "kidney_left_cortex": 8,
    "kidney_left_medulla": 9,
    "spine": 10,  # vertebrae L5..C1 (bodies and posterior arches)
    "ribs": 11,
    "pelvis": 12,  # iliac wings, sacrum, pubic/ischial ring, femoral heads
    "bladder": 13,
    "parotid_right": 14,
    "parotid_left": 15,
    "submandibular_right": 16,
    "submandibular_left": 17,
    "lesion_liver": 18,
    "lesion_bone": 19,
    "lesion_lymph_node": 20,
    "lesion_lung": 21,  # only from phantoms.add_lung_lesion
}
"""Label values of :func:`make_torso` labelmaps (0 is air outside the body)."""

TRACERS = ("PSMA", "DOTATATE")

# Relative 177Lu activity concentration (SUV-like: concentration / mean concentration in the body)
# at about 24 h after injection, as (low, high); each phantom samples every label log-uniformly.
# These are plausible ranges, not a fit to patient data. They are informed by the ratios of organ
# absorbed doses per administered activity (absorbed dose ~ time-integrated concentration), e.g.
# 177Lu-PSMA-617/I&T: kidneys and salivary glands highest among organs, liver and spleen about
# 4-8 times lower, red marrow lowest (Violet et al., J Nucl Med 2019;60:517-523; Ells et al.,
# J Nucl Med 2024;65:1264-1271 (meta-analysis)); 177Lu-DOTATATE: spleen >= kidneys > liver, low
# salivary uptake (e.g. 1.17, 0.57 and 0.27 mGy/MBq for spleen, kidneys and liver in "Dosimetric
# analyses of kidneys, liver, spleen, pituitary gland, and neuroendocrine tumors of patients
# treated with 177Lu-DOTATATE", Clin Nucl Med 2013;38:188-194; Sandstrom et al., J Nucl Med
# 2013;54:33-41). Tumour concentrations vary over a decade in both. Kidney cortex/medulla split
# following the higher cortical retention of both peptides.
UPTAKE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "PSMA": {
        "body": (0.4, 0.8),
        "lung": (0.1, 0.3),
        "liver": (1.5, 4.0),
        "spleen": (1.0, 3.0),
        "kidney_cortex": (8.0, 20.0),
        "kidney_medulla": (3.0, 8.0),
        "bone": (0.3, 1.0),
        "bladder": (2.0, 10.0),
        "salivary": (8.0, 20.0),
        "lesion": (10.0, 60.0),
    },
    "DOTATATE": {
        "body": (0.3, 0.7),
        "lung": (0.1, 0.3),
        "liver": (2.0, 5.0),
        "spleen": (8.0, 20.0),
        "kidney_cortex": (6.0, 16.0),
        "kidney_medulla": (2.0, 6.0),
        "bone": (0.5, 1.5),
        "bladder": (2.0, 10.0),
        "salivary": (0.5, 2.0),
        "lesion": (15.0, 60.0),
    },
}

LESION_SITES: dict[str, dict[str, float]] = {
    "PSMA": {"bone": 0.5, "lymph_node": 0.35, "liver": 0.15},  # prostate cancer: mostly bone and nodes
    "DOTATATE": {"liver": 0.6, "lymph_node": 0.25, "bone": 0.15},  # NETs: mostly liver
}
"""Probability of each lesion site per tracer."""

HU: dict[str, float] = {
    "air": -1000.0,
    "lung": -800.0,
    "adipose": -100.0,
    "soft_tissue": 40.0,
    "liver": 60.0,
    "spleen": 50.0,
    "kidney": 30.0,
    "bladder": 10.0,  # urine
    "salivary": 20.0,
    "spongy_bone": 300.0,
    "cortical_bone": 1100.0,
    "lesion_liver": 35.0,  # hypodense metastasis
    "lesion_bone": 700.0,  # sclerotic metastasis
    "lesion_lymph_node": 35.0,
    "lesion_lung": 35.0,  # soft-tissue nodule
}
"""CT numbers (HU) of the tissues of :func:`make_torso`."""

_MIN_SIZE = 16
_BODY_WALL_MM = 10.0  # muscle wall between the subcutaneous fat and the organs
_MAX_LESIONS = 50
_FOV_MIN_XY_MM = (500.0, 360.0)
_WINDOW_S_MM = (-20.0, 590.0)  # pelvis to lung apex
_WINDOW_TOP_HEAD_NECK_MM = 740.0  # above the parotid glands

# Lean body cross-section along s: s, lateral and AP semi-axes, AP centre (mm).
_BODY_PROFILE = np.array(
    [
        [-200.0, 165.0, 105.0, 0.0],
        [0.0, 165.0, 105.0, 0.0],
        [150.0, 155.0, 100.0, 0.0],
        [250.0, 140.0, 100.0, 0.0],
        [400.0, 150.0, 110.0, 0.0],
        [520.0, 160.0, 105.0, 0.0],
        [570.0, 185.0, 95.0, 5.0],
        [610.0, 150.0, 80.0, 10.0],
        [635.0, 60.0, 60.0, 20.0],
        [660.0, 55.0, 60.0, 15.0],
        [690.0, 68.0, 82.0, 10.0],
        [740.0, 75.0, 92.0, 10.0],
        [1000.0, 75.0, 92.0, 10.0],
    ]
)
_FAT_PROFILE = np.array([[600.0, 1.0], [640.0, 0.3]])  # fraction of the trunk's fat thickness
# Rib cage (ring through the ribs) along s: s, lateral and AP semi-axes (mm).
_RIB_PROFILE = np.array([[320.0, 135.0, 92.0], [450.0, 135.0, 95.0], [540.0, 118.0, 86.0], [590.0, 80.0, 66.0]])
# Vertebral bodies along s: s, AP centre, lateral and AP semi-axes (mm).
_SPINE_PROFILE = np.array(
    [[180.0, 50.0, 24.0, 17.0], [350.0, 45.0, 22.0, 16.0], [450.0, 55.0, 17.0, 14.0], [600.0, 40.0, 14.0, 11.0],
     [640.0, 25.0, 12.0, 9.0], [720.0, 20.0, 12.0, 9.0]]
)  # fmt: skip
_LYMPH_NODE_STATIONS = (  # (x range, y range, s range) in mm: para-aortic, iliac (R, L), mediastinal
    ((-35.0, 35.0), (-15.0, 30.0), (200.0, 380.0)),
    ((-90.0, -35.0), (-20.0, 50.0), (70.0, 200.0)),
    ((35.0, 90.0), (-20.0, 50.0), (70.0, 200.0)),
    ((-30.0, 30.0), (-50.0, 30.0), (470.0, 560.0)),
)


@dataclass(frozen=True)
class Lesion:
    """One lesion of a phantom: site, centre (LPS, mm), nominal diameter (mm), relative uptake (SUV-like)."""

    site: str
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    relative_uptake: float


@dataclass(frozen=True)
class Phantom:
    """A synthetic patient on one grid (all three images share geometry).

    ``ct``: CT numbers in HU (float32). ``labels``: labelmap (uint8) with ``label_names`` mapping the
    values present to names (see :data:`LABELS`). ``activity``: 177Lu activity concentration in
    Bq/mL (float32, unit metadata "Bq/mL"). ``provenance``: generator, seed, parameters and sampled
    values, also stored as JSON under :data:`PROVENANCE_KEY` in each image's metadata.
    """

    ct: sitk.Image
    labels: sitk.Image
    label_names: dict[int, str]
    activity: sitk.Image
    lesions: tuple[Lesion, ...]
    provenance: dict[str, Any]


@dataclass(frozen=True)
class _Ellipsoid:
    """Ellipsoid in the anatomical frame: centre (x, y, s) and semi-axes in mm, rotation angles in degrees."""

    centre: tuple[float, float, float]
    semi: tuple[float, float, float]
    angles_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class _Space:
    """Deformed anatomical coordinates (mm) of every voxel and a smooth unit-std field, each (z, y, x) float32."""

    x: np.ndarray
    y: np.ndarray
    s: np.ndarray
    rough: np.ndarray


# Nominal organs in the anatomical frame (right = negative x).
_LUNGS = {
    "lung_right": _Ellipsoid((-75.0, 5.0, 400.0), (58.0, 90.0, 190.0)),
    "lung_left": _Ellipsoid((75.0, 5.0, 400.0), (55.0, 90.0, 190.0)),
}
_HEART = _Ellipsoid((25.0, -25.0, 470.0), (55.0, 45.0, 60.0), (0.0, 0.0, -30.0))
_LIVER = (_Ellipsoid((-65.0, 0.0, 410.0), (65.0, 75.0, 70.0)), _Ellipsoid((20.0, -40.0, 425.0), (50.0, 30.0, 40.0)))
_SPLEEN = _Ellipsoid((85.0, 40.0, 420.0), (28.0, 45.0, 45.0), (0.0, 0.0, 30.0))
_KIDNEYS = {
    "right": _Ellipsoid((-70.0, 55.0, 300.0), (28.0, 24.0, 55.0), (0.0, -15.0, 25.0)),
    "left": _Ellipsoid((70.0, 55.0, 320.0), (28.0, 24.0, 55.0), (0.0, 15.0, -25.0)),
}
_MEDULLA_SCALE = 0.6
_BLADDER = _Ellipsoid((0.0, -15.0, 50.0), (45.0, 35.0, 35.0))
_PELVIS = (
    _Ellipsoid((-85.0, 35.0, 150.0), (12.0, 55.0, 65.0), (0.0, 0.0, 40.0)),  # iliac wings
    _Ellipsoid((85.0, 35.0, 150.0), (12.0, 55.0, 65.0), (0.0, 0.0, -40.0)),
    _Ellipsoid((0.0, 70.0, 130.0), (40.0, 18.0, 60.0), (-30.0, 0.0, 0.0)),  # sacrum
    _Ellipsoid((-95.0, 10.0, 30.0), (24.0, 24.0, 24.0)),  # femoral heads
    _Ellipsoid((95.0, 10.0, 30.0), (24.0, 24.0, 24.0)),
)
_SALIVARY = {
    "parotid_right": _Ellipsoid((-46.0, 15.0, 700.0), (12.0, 22.0, 22.0)),
    "parotid_left": _Ellipsoid((46.0, 15.0, 700.0), (12.0, 22.0, 22.0)),
    "submandibular_right": _Ellipsoid((-38.0, -15.0, 665.0), (11.0, 14.0, 11.0)),
    "submandibular_left": _Ellipsoid((38.0, -15.0, 665.0), (11.0, 14.0, 11.0)),
}
