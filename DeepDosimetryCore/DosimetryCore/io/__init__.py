"""Files in and out: NRRD/NIfTI/DICOM images, NM planar acquisitions, tables, and (in
:mod:`DosimetryCore.io.mrml`, the only module importing ``slicer``) MRML nodes and scenes.

The image and planar readers and writers are re-exported here, so ``from DosimetryCore import io``
then ``io.read_image(path)`` reads any supported file.
"""

from DosimetryCore.io.images import (
    MODALITY_KEY,
    NM_IMAGE_STORAGE,
    SECONDARY_CAPTURE_SOP_CLASSES,
    VOLUME_SUFFIXES,
    PlanarPair,
    PlanarView,
    planar_volume,
    read_dicom_series,
    read_image,
    read_planar,
    write_image,
    write_planar_dicom,
)

__all__ = [
    "MODALITY_KEY",
    "NM_IMAGE_STORAGE",
    "SECONDARY_CAPTURE_SOP_CLASSES",
    "VOLUME_SUFFIXES",
    "PlanarPair",
    "PlanarView",
    "planar_volume",
    "read_dicom_series",
    "read_image",
    "read_planar",
    "write_image",
    "write_planar_dicom",
]
