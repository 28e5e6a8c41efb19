"""Synthetic torsos, random activity distributions and patient-specific augmentation.

Three generators feed the simulation side of DeepDosimetry; all are seeded (the same seed gives
bit-identical output on the same machine) and vectorised over voxels:

- :func:`make_torso` builds a synthetic patient: CT (HU), labelmap with a name table, and the 177Lu
  activity concentration (Bq/mL) of a PSMA or DOTATATE therapy at about 24 h after injection.
- :func:`random_activity` builds the random activity distributions of seed 003 (Leube et al.):
  random shapes placed in the body until a target active volume is reached, times a smooth
  non-uniform pattern, scaled to a patient-like total activity.
- :func:`add_lung_lesion` adds a lesion at the lung's edge to a torso (where voxel dose kernels fail most).
- :func:`augment` is the patient-specific augmentation of seed 000 (Lopez-Montes et al.): every
  organ's uptake times U(0.5, 2), random rotations (+-5 degrees) and translations, applied to
  activity, CT and labelmap together.

Geometry follows :mod:`DosimetryCore.core.volume`: LPS, identity direction, arrays ``(z, y, x)`` with x
toward the patient's left, y toward posterior (anterior at low y index) and z toward superior; the
origin is chosen so that the centre of the image is the physical point (0, 0, 0).

The anatomy is described in an *anatomical frame* in mm: ``x`` (patient left positive), ``y``
(posterior positive, 0 near the middle of the abdomen) and ``s``, the height above the pubic
symphysis. The field of view is a window of ``s`` centred on the phantom: pelvis (just below the
pubic symphysis) to lung apex, about 610 mm, or up to the parotid glands, about 760 mm, when
``salivary_glands=True``; a head-neck window that long does not fit in 128 slices of 4.8 mm, so
the glands need e.g. ``size=(128, 128, 160)``.
"""

from DosimetryCore.phantoms.lung_lesions import add_lung_lesion
from DosimetryCore.phantoms.random_activity import random_activity
from DosimetryCore.phantoms.tables import HU, LABELS, TRACERS, Lesion, Phantom
from DosimetryCore.phantoms.torso import make_torso
from DosimetryCore.phantoms.variations import augment

__all__ = [
    "HU",
    "add_lung_lesion",
    "LABELS",
    "TRACERS",
    "Lesion",
    "Phantom",
    "augment",
    "make_torso",
    "random_activity",
]
