"""When a SPECT is unlike a DL-PVC model's training data: warnings for the output's provenance, the console and
the panel (the correction still runs; a physicist decides).

A model card's ``training_domain`` states what the network saw in training:

- ``spacing_mm`` (x, y, z): the voxel size of its training SPECTs. Partial volume is a matter of resolution
  relative to the voxel: a SPECT whose voxels are more than :data:`GRID_RATIO_LIMIT` times coarser or finer than
  the training voxels is resampled onto the network grid, and the network corrects blur it never learnt.
- ``total_activity_MBq`` (low, high): the activity in the field of the training cases; outside it (by more than
  :data:`ACTIVITY_MARGIN`) the SPECT's noise level differs from anything the network saw.

And whatever the card: a SPECT whose activity reaches the edge of its field (the hottest voxel of a border face
above :data:`EDGE_FRACTION_LIMIT` of the image's maximum) does not cover the body; the training SPECTs held the
whole body, with cold air around it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.constants import BQ_PER_MBQ
from DosimetryCore.core.volume import voxel_volume_ml

DOMAIN_CARD_FIELD = "training_domain"
GRID_RATIO_LIMIT = 2.0
"""Voxels more than this many times coarser or finer than the training voxels are outside the domain."""
ACTIVITY_MARGIN = 2.0
"""A total activity below low / margin or above high x margin of the training range is outside the domain."""
EDGE_FRACTION_LIMIT = 0.1
"""Activity on a border face above this fraction of the image's maximum: the field does not cover the body."""


def training_domain(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card's ``training_domain``; for cards written before it existed, the training grid's spacing and the
    total-activity range of the ``simulated_with`` command (``--total-activity-mbq LOW HIGH``)."""
    if DOMAIN_CARD_FIELD in card:
        return dict(card[DOMAIN_CARD_FIELD])
    domain: dict[str, Any] = {}
    grid = card.get("grid")
    if isinstance(grid, Mapping) and "spacing_mm" in grid:
        domain["spacing_mm"] = [float(s) for s in grid["spacing_mm"]]
    command = str(card.get("training_data", {}).get("simulated_with", ""))
    found = re.search(r"--total-activity-mbq\s+(\S+)\s+(\S+)", command)
    if found:
        domain["total_activity_MBq"] = [float(found.group(1)), float(found.group(2))]
    return domain


def domain_warnings(image: sitk.Image, card: Mapping[str, Any]) -> list[str]:
    """Why the SPECT ``image`` (Bq/mL) lies outside the training domain of the model of ``card`` (empty when it
    does not); see the module docstring."""
    domain = training_domain(card)
    name = card.get("name", "the DL-PVC model")
    notes = []
    if domain.get("spacing_mm"):
        trained = np.asarray(domain["spacing_mm"], float)
        ratio = np.asarray(image.GetSpacing(), float) / trained
        if ratio.max() > GRID_RATIO_LIMIT or ratio.min() < 1.0 / GRID_RATIO_LIMIT:
            spacing = " x ".join(f"{s:.3g}" for s in image.GetSpacing())
            notes.append(
                f"outside the training domain of {name}: voxels of {spacing} mm, the model was trained on "
                f"{' x '.join(f'{s:g}' for s in trained)} mm; it corrects partial volume as it was at that resolution"
            )
    values = sitk.GetArrayViewFromImage(image)
    if domain.get("total_activity_MBq"):
        low, high = domain["total_activity_MBq"]
        total = float(values.sum(dtype=np.float64)) * voxel_volume_ml(image) / BQ_PER_MBQ
        if total < low / ACTIVITY_MARGIN or total > high * ACTIVITY_MARGIN:
            notes.append(
                f"outside the training domain of {name}: {total:.4g} MBq in the field, the model was trained on "
                f"{low:g}-{high:g} MBq; its noise level differs from the training SPECTs'"
            )
    edge = _hottest_border_fraction(values)
    if edge > EDGE_FRACTION_LIMIT:
        notes.append(
            f"the SPECT's field does not cover the body: activity at its edge reaches {100 * edge:.0f} % of its "
            "maximum (DL-PVC was trained on fields holding the whole body; activity outside the field is not "
            "corrected for)"
        )
    return notes


def _hottest_border_fraction(values: np.ndarray) -> float:
    """The largest value on the six border faces of a (z, y, x) array over its maximum (0 for an empty one)."""
    peak = float(values.max())
    if not peak > 0:
        return 0.0
    faces = [values[0], values[-1], values[:, 0], values[:, -1], values[:, :, 0], values[:, :, -1]]
    return max(float(face.max()) for face in faces) / peak
