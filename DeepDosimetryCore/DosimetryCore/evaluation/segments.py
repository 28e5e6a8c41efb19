"""Per-segment statistics of dose (rate) maps: mean, spread, D_x% and mean dose errors per labelled segment.

Arrays ``(z, y, x)`` as in :mod:`DosimetryCore.evaluation.metrics`; values keep their unit (e.g. Gy/h).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from DosimetryCore.evaluation.metrics import _as_values, _pair, _positive, _relative_error_percent


def _as_labelmap(labelmap: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``labelmap`` as an int64 array of ``shape``; float labels must be integral."""
    if hasattr(labelmap, "detach"):
        labelmap = labelmap.detach().cpu().numpy()
    array = np.asarray(labelmap)
    if array.shape != shape:
        raise ValueError(f"labelmap: shape {array.shape} does not match values shape {shape}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise ValueError("labelmap: expected integer labels, got non-integral or non-finite values")
    elif not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValueError(f"labelmap: expected integer labels, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _segments(labelmap: np.ndarray, names: Mapping[int, str]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Index the voxels of the named segments.

    Returns ``(labels, inside, index, counts)``: the named labels (sorted), the flat boolean
    selection of voxels carrying one of them, each selected voxel's position in ``labels``, and
    the voxel count per label. Raises ValueError for bad ``names`` or an empty segment.
    """
    if not isinstance(names, Mapping) or not names:
        raise ValueError("names: expected a non-empty mapping {label: segment name}")
    for label, name in names.items():
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"names: label {label!r} is not an integer")
        if not isinstance(name, str):
            raise ValueError(f"names: name of label {label} is not a string: {name!r}")
    labels = sorted(int(label) for label in names)
    sorted_labels = np.asarray(labels, dtype=np.int64)
    flat = labelmap.ravel()
    position = np.minimum(np.searchsorted(sorted_labels, flat), len(labels) - 1)
    inside = sorted_labels[position] == flat
    index = position[inside]
    counts = np.bincount(index, minlength=len(labels))
    empty = [f"'{names[label]}' (label {label})" for label, count in zip(labels, counts, strict=True) if count == 0]
    if empty:
        raise ValueError(f"labelmap: segment(s) {', '.join(empty)} have no voxels")
    return labels, inside, index, counts


def _dose_volume_key(percent: float) -> str:
    """Statistics key of D_x, e.g. ``"D2%"``, ``"D50%"``, ``"D0.5%"``."""
    return f"D{percent:g}%"


def segment_statistics(
    values: Any,
    labelmap: Any,
    names: Mapping[int, str],
    voxel_volume_ml: float,
    *,
    dose_volume_percents: Sequence[float] = (),
) -> list[dict[str, Any]]:
    """Statistics of ``values`` in each segment of ``labelmap`` listed in ``names``.

    One dict per segment, in ascending label order, with keys:

    - ``"segment"`` (name), ``"label"`` (int), ``"voxels"`` (int), ``"volume_ml"`` (mL);
    - ``"mean"``, ``"std"`` (population standard deviation, ddof = 0), ``"min"``, ``"max"``, in
      the unit of ``values``;
    - ``"sum_times_volume"``: sum of the values times ``voxel_volume_ml`` (for values in Bq/mL:
      the total activity in Bq; for Gy/h: Gy/h * mL);
    - for each x in ``dose_volume_percents``, ``"D{x}%"`` (e.g. ``"D2%"``, ``"D50%"``, ``"D98%"``):
      the minimum value in the hottest x % of the segment's volume, i.e. the k-th largest value
      with k = ceil(x * voxels / 100) (at least 1). D100% is the minimum; a small x gives the
      maximum. Unit of ``values``.

    Computed with ``np.bincount``, ``scipy.ndimage`` and one sort; no Python loop over voxels.

    Args:
        values: e.g. dose rate (Gy/h) or activity concentration (Bq/mL), shape ``(z, y, x)``.
        labelmap: integer labels, same shape; labels not in ``names`` are ignored.
        names: ``{label: segment name}`` of the segments to report.
        voxel_volume_ml: volume of one voxel in mL (= product of the spacing in mm / 1000).
        dose_volume_percents: the x of the D_x to add, each in (0, 100].

    Raises:
        ValueError: shape mismatch, NaN values, bad ``names``/``voxel_volume_ml``/percents, or a
            named segment without voxels (named in the message).
    """
    vals = _as_values(values, "values")
    labels_array = _as_labelmap(labelmap, vals.shape)
    voxel_volume_ml = _positive(voxel_volume_ml, "voxel_volume_ml")
    percents = [float(x) for x in dose_volume_percents]
    for x in percents:
        if not 0 < x <= 100:
            raise ValueError(f"dose_volume_percents: {x!r} is not in (0, 100]")
    labels, inside, index, counts = _segments(labels_array, names)
    selected = vals.ravel()[inside]
    segment_ids = np.arange(len(labels))

    sums = np.bincount(index, weights=selected, minlength=len(labels))
    means = sums / counts
    deviation = selected - means[index]
    stds = np.sqrt(np.bincount(index, weights=deviation * deviation, minlength=len(labels)) / counts)
    minima = ndimage.minimum(selected, labels=index, index=segment_ids)
    maxima = ndimage.maximum(selected, labels=index, index=segment_ids)

    dose_volume: dict[str, np.ndarray] = {}
    if percents:
        # Sort by segment, then by value descending: each segment is a contiguous, hottest-first run.
        descending = selected[np.lexsort((-selected, index))]
        starts = np.cumsum(counts) - counts
        for x in percents:
            # (1 - 1e-12) keeps exact products such as 50 % of 4 voxels = 2 from rounding up.
            hottest = np.maximum(np.ceil(x * counts / 100.0 * (1.0 - 1e-12)).astype(np.int64), 1)
            dose_volume[_dose_volume_key(x)] = descending[starts + hottest - 1]

    rows = []
    for i, label in enumerate(labels):
        row: dict[str, Any] = {
            "segment": names[label],
            "label": label,
            "voxels": int(counts[i]),
            "volume_ml": float(counts[i] * voxel_volume_ml),
            "mean": float(means[i]),
            "std": float(stds[i]),
            "min": float(minima[i]),
            "max": float(maxima[i]),
            "sum_times_volume": float(sums[i] * voxel_volume_ml),
        }
        row.update({key: float(column[i]) for key, column in dose_volume.items()})
        rows.append(row)
    return rows


def segment_mean_dose_errors_percent(
    estimate: Any, truth: Any, labelmap: Any, names: Mapping[int, str], *, absolute: bool = True
) -> dict[str, float]:
    """Mean dose error (see :func:`mean_dose_error_percent`) in each named segment, in percent.

    MDE_s = 100 * |mean_s(estimate) - mean_s(truth)| / |mean_s(truth)| for each segment s of
    ``labelmap`` listed in ``names`` (seed 002, Table I: one value per organ/lesion). Signed when
    ``absolute=False``.

    Args:
        estimate, truth: arrays of the same shape, e.g. ``(z, y, x)`` dose rate in Gy/h.
        labelmap: integer labels, same shape; labels not in ``names`` are ignored.
        names: ``{label: segment name}``; names must be unique (they key the result).
        absolute: return |error| (seed 002) rather than the signed error.

    Returns:
        ``{segment name: MDE in percent}`` in ascending label order.
    """
    est, ref = _pair(estimate, truth)
    labels_array = _as_labelmap(labelmap, ref.shape)
    labels, inside, index, counts = _segments(labels_array, names)
    if len(set(names.values())) != len(names):
        raise ValueError("names: segment names must be unique, they key the result")
    mean_estimate = np.bincount(index, weights=est.ravel()[inside], minlength=len(labels)) / counts
    mean_truth = np.bincount(index, weights=ref.ravel()[inside], minlength=len(labels)) / counts
    zero = [f"'{names[label]}' (label {label})" for label, mean in zip(labels, mean_truth, strict=True) if mean == 0]
    if zero:
        raise ValueError(f"truth: mean is 0 in segment(s) {', '.join(zero)}; mean dose error is undefined")
    errors = _relative_error_percent(mean_estimate, mean_truth, absolute)
    return {names[label]: float(error) for label, error in zip(labels, errors, strict=True)}
