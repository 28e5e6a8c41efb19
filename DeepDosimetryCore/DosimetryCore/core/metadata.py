"""The image metadata keys of DeepDosimetry: the one place each key is defined.

Every key starts with :data:`KEY_PREFIX`; :mod:`DosimetryCore.io.mrml` turns ``deepdosimetry.x_y``
into the node attribute ``DeepDosimetry.X_y``, so the same facts travel with files and MRML nodes.
"""

KEY_PREFIX = "deepdosimetry."
"""Prefix of every DeepDosimetry metadata key."""

UNIT_KEY = KEY_PREFIX + "unit"
"""Physical unit of the voxel values, e.g. ``"Bq/mL"``."""

QUANTITY_KEY = KEY_PREFIX + "quantity"
"""What the voxel values are, e.g. ``"activity concentration"``."""

PROVENANCE_KEY = KEY_PREFIX + "provenance"
"""How the image was made: one JSON record (see :mod:`DosimetryCore.core.provenance`)."""

LABEL_NAMES_KEY = KEY_PREFIX + "label_names"
"""Labelmaps: the label -> segment name table as JSON (``{"1": "liver", ...}``)."""

MODALITY_KEY = KEY_PREFIX + "modality"
"""DICOM modality of an image read from DICOM (``"NM"``, ``"PT"``, ``"CT"``, ...)."""

FRAME_DURATION_KEY = KEY_PREFIX + "frame_duration_s"
"""Planar views: acquisition time of the frame in s."""

SOURCE_KEY = KEY_PREFIX + "source"
"""Planar views: the file the view was read from."""

ANGLES_KEY = KEY_PREFIX + "angles_deg"
"""SPECT projections: the gantry angle of each view in degrees, space-separated."""

DESCRIPTIVE_KEYS = frozenset({UNIT_KEY, QUANTITY_KEY, LABEL_NAMES_KEY})
"""Keys that describe the voxel values rather than how the image was made."""

ACQUISITION_DATETIME_KEY = KEY_PREFIX + "acquisition_datetime"
"""When the image's data were acquired, ISO 8601 (``2026-11-30T14:05:00``), from DICOM AcquisitionDateTime or
AcquisitionDate + AcquisitionTime; carried from an activity image to the dose rates computed from it."""
