"""The one label-name reader: labelmaps and the names of their segments.

A labelmap is an integer image (0 = background). Its segment names come, in this order, from the
``deepdosimetry.label_names`` metadata (JSON), from Slicer's ``SegmentN_Name`` /
``SegmentN_LabelValue`` tags (a ``.seg.nrrd``), else as ``"label N"`` for every label present.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.metadata import LABEL_NAMES_KEY
from DosimetryCore.core.volume import require_image, resample_to, same_geometry
from DosimetryCore.io.images import read_image


def label_names(labelmap: sitk.Image) -> dict[int, str]:
    """Segment names of a labelmap (label -> name), from its metadata as the module docstring says."""
    keys = set(labelmap.GetMetaDataKeys())
    if LABEL_NAMES_KEY in keys:
        try:
            table = json.loads(labelmap.GetMetaData(LABEL_NAMES_KEY))
            return {int(label): str(name) for label, name in table.items()}
        except (ValueError, AttributeError) as error:
            raise ValueError(f"labelmap: {LABEL_NAMES_KEY} is not a JSON label -> name table ({error})") from error
    names = {}
    index = 0
    while f"Segment{index}_Name" in keys and f"Segment{index}_LabelValue" in keys:
        names[int(labelmap.GetMetaData(f"Segment{index}_LabelValue"))] = labelmap.GetMetaData(f"Segment{index}_Name")
        index += 1
    if names:
        return names
    labels = np.unique(sitk.GetArrayViewFromImage(labelmap))
    return {int(label): f"label {int(label)}" for label in labels if label > 0}


def segment_names(labelmap: sitk.Image, names: Mapping[int, str] | None = None) -> dict[int, str]:
    """The named labels present in ``labelmap`` (label -> segment name), in label order.

    Without ``names`` every nonzero label is named ``"label N"``; named labels that do not occur
    in the labelmap are left out. Raises ValueError for a non-integer or empty labelmap.
    """
    require_image(labelmap, "labelmap")
    values = sitk.GetArrayViewFromImage(labelmap)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"labelmap: expected integer labels, got {values.dtype}")
    present = [int(label) for label in np.unique(values) if label != 0]
    if not present:
        raise ValueError("labelmap: has no nonzero labels")
    if names is None:
        return {label: f"label {label}" for label in present}
    kept = {label: str(names[label]) for label in present if label in names}
    if not kept:
        raise ValueError(f"names: none of the labels {sorted(names)} occurs in the labelmap (it has {present})")
    if len(set(kept.values())) != len(kept):
        raise ValueError(f"names: segment names must be unique, got {sorted(kept.values())}")
    return kept


def read_labelmap_on(
    path: str | os.PathLike, image: sitk.Image, option: str = "labelmap"
) -> tuple[sitk.Image, dict[int, str]]:
    """A labelmap file on the grid of ``image`` and its segment names.

    Names come from the file's metadata (:func:`label_names`); errors name ``option``. A labelmap on
    another grid is resampled onto the SPECT's by nearest neighbour; a segment left without a voxel
    there (outside the SPECT's field of view, or smaller than a voxel) is an error.
    """
    labelmap = require_image(read_image(path), f"{option} {path}")
    if sitk.GetArrayViewFromImage(labelmap).dtype.kind not in "iu":
        raise ValueError(f"{option}: {path} holds {labelmap.GetPixelIDTypeAsString()} values, expected integer labels")
    names = label_names(labelmap)
    if not names:
        raise ValueError(f"{option}: {path} holds no segment (no label > 0)")
    if not same_geometry(labelmap, image):
        labelmap = resample_to(labelmap, image, "nearest")
    present = set(np.unique(sitk.GetArrayViewFromImage(labelmap)).tolist())
    empty = [f"{name!r} (label {label})" for label, name in names.items() if label not in present]
    if empty:
        raise ValueError(
            f"{option}: segment(s) {', '.join(empty)} have no voxel on the SPECT grid "
            "(outside its field of view, or smaller than a voxel)"
        )
    return labelmap, names
