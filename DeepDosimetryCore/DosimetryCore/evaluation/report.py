"""Evaluation report: metrics table, comparison figure and one Slicer scene from image files.

The ``deepdosimetry report`` sub-command compares one or more estimates (e.g. SPECT without PVC,
after DL-PVC, after IY-PVC, predicted dose rate) with a ground truth on the same grid, as seed
003 (Leube et al., J Nucl Med 2024, DL-PVC) does:

- SSIM, NRMSE and VAA (alpha = 5 %) inside the region where the truth is present (truth > 0);
  SSIM with data range L = max(truth) - min(truth), NRMSE normalised by the truth's range there;
- AD, the total activity deviation in percent over the whole image;
- with a labelmap, the recovery coefficient RC = mean(estimate) / mean(truth) per segment.

SSIM, NRMSE, VAA and RC are dimensionless ratios (0.078 = 7.8 %), AD is in percent; image values
are in the truth's unit (Bq/mL for activity concentration, the default when none is recorded).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk

from DosimetryCore.core.metadata import DESCRIPTIVE_KEYS, KEY_PREFIX
from DosimetryCore.core.units import ACTIVITY_UNIT
from DosimetryCore.core.volume import require_image, require_same_geometry, unit_of
from DosimetryCore.evaluation.table import column_units, image_metrics
from DosimetryCore.io.labels import segment_names
from DosimetryCore.io.tables import write_csv

TRUTH_NAME = "truth"
"""Name of the ground-truth volume in the scene and figure; no method may use it."""

_AXES = {"z": 0, "y": 1, "x": 2}


def _value_unit(truth: sitk.Image) -> str:
    """The unit of the truth's voxel values; activity concentration (Bq/mL) when none is recorded."""
    return unit_of(truth) or ACTIVITY_UNIT


def _check_estimates(truth: sitk.Image, estimates: Mapping[str, sitk.Image]) -> None:
    """ValueError naming the method for an empty set, a bad name, a non-image, other grid or unit."""
    require_image(truth, TRUTH_NAME)
    if not estimates:
        raise ValueError("estimates: give at least one method to compare with the truth")
    for name, image in estimates.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"estimates: method names must be non-empty strings, got {name!r}")
        if name == TRUTH_NAME:
            raise ValueError(f"estimates: {TRUTH_NAME!r} is reserved for the ground truth; rename the method")
        require_image(image, f"method {name!r}")
        require_same_geometry(image, truth, f"method {name!r}", TRUTH_NAME)
        if unit_of(image) is not None and unit_of(truth) is not None and unit_of(image) != unit_of(truth):
            raise ValueError(f"method {name!r}: unit is {unit_of(image)}, the truth's is {unit_of(truth)}")


def method_metrics(
    truth: sitk.Image,
    estimates: Mapping[str, sitk.Image],
    labelmap: sitk.Image | None = None,
    names: Mapping[int, str] | None = None,
) -> list[dict[str, Any]]:
    """One row of metrics per method, in the order of ``estimates``.

    Columns: ``method`` and the metric table of :mod:`DosimetryCore.evaluation.table` (``ssim``,
    ``nrmse_percent``, ``vaa_percent``, ``ad_percent`` and, with a ``labelmap`` on the truth's
    grid, ``RC <segment>`` per named segment, see :func:`segment_names`).

    Raises ValueError naming the method for a grid or unit that differs from the truth's, and for
    a truth without voxels > 0 or a segment whose truth mean is 0.
    """
    _check_estimates(truth, estimates)
    ref = sitk.GetArrayFromImage(truth).astype(np.float64)
    if not (ref > 0).any():
        raise ValueError("truth: has no voxel > 0; the metrics are computed where the truth is present")
    segments: dict[str, np.ndarray] = {}
    if labelmap is not None:
        require_same_geometry(labelmap, truth, "labelmap", TRUTH_NAME)
        labels = sitk.GetArrayViewFromImage(labelmap)
        segments = {name: labels == label for label, name in segment_names(labelmap, names).items()}
    rows = []
    for name, image in estimates.items():
        est = sitk.GetArrayFromImage(image).astype(np.float64)
        try:
            rows.append({"method": name, **image_metrics(est, ref, segments)})
        except ValueError as error:
            raise ValueError(f"method {name!r}: {error}") from error
    return rows


def metric_units(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Column -> unit for the metric columns of :func:`method_metrics` rows."""
    return column_units(rows[0])


DISPLAY_GAMMA = 0.5
"""Gamma of the slices' colour scale: 0.5 shows a liver at 5 % of a lesion's value at about 22 % brightness."""


def report_figure(
    truth: sitk.Image,
    estimates: Mapping[str, sitk.Image],
    path_png: str | os.PathLike,
    *,
    slice_index: Sequence[int] | None = None,
    profile: Literal["x", "y", "z"] = "x",
    title: str | None = None,
) -> Path:
    """Draw the comparison figure (after Leube et al., Fig. 4) into a PNG; returns its path.

    Top rows: axial and coronal slices through one voxel for the truth and each method, with
    orientation letters (R/L, A/P, S/I), on one colour scale from 0 to the largest value shown with
    a gamma of :data:`DISPLAY_GAMMA` (stated on the colour bar), so that organs of low uptake stay
    visible next to the hottest lesion; negative values show as 0. Bottom: the line profiles
    through that voxel along ``profile`` for all of them, against position in mm, on a linear scale.

    Args:
        truth, estimates: images on one grid (see :func:`method_metrics`).
        path_png: the PNG file to write (parent folders are created).
        slice_index: the voxel ``(z, y, x)`` the slices and profile go through; default the
            hottest voxel of the truth.
        profile: the axis of the line profile, ``"x"`` (default), ``"y"`` or ``"z"``.
        title: the case shown (e.g. its file or seed), written at the top of the figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    _check_estimates(truth, estimates)
    if profile not in _AXES:
        raise ValueError(f"profile: expected 'x', 'y' or 'z', got {profile!r}")
    volumes = {TRUTH_NAME: sitk.GetArrayFromImage(truth)} | {n: sitk.GetArrayFromImage(i) for n, i in estimates.items()}
    shape = volumes[TRUTH_NAME].shape
    if slice_index is None:
        voxel = tuple(int(i) for i in np.unravel_index(np.argmax(volumes[TRUTH_NAME]), shape))
    else:
        voxel = tuple(int(i) for i in slice_index)
        if len(voxel) != 3 or any(not 0 <= i < n for i, n in zip(voxel, shape, strict=True)):
            raise ValueError(f"slice_index: expected a voxel (z, y, x) inside {shape}, got {tuple(slice_index)}")
    z, y, x = voxel
    spacing_x, spacing_y, spacing_z = truth.GetSpacing()
    # LPS voxel axes shown radiologically: patient right on the left, anterior (axial) and superior (coronal) up.
    views = {
        f"axial z={z}": ({n: v[z] for n, v in volumes.items()}, spacing_y / spacing_x, "upper", ("A", "P")),
        f"coronal y={y}": ({n: v[:, y, :] for n, v in volumes.items()}, spacing_z / spacing_x, "lower", ("S", "I")),
    }
    vmax = max(float(s.max()) for slices, _, _, _ in views.values() for s in slices.values())
    norm = PowerNorm(gamma=DISPLAY_GAMMA, vmin=0.0, vmax=max(vmax, 1e-30))
    unit = _value_unit(truth)

    columns = len(volumes)
    figure = Figure(figsize=(2.6 * columns + 1.2, 8.4), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(3, columns + 1, width_ratios=[1.0] * columns + [0.06])
    shown = None
    for row, (view, (slices, aspect, origin, (top, bottom))) in enumerate(views.items()):
        for column, (name, values) in enumerate(slices.items()):
            axes = figure.add_subplot(grid[row, column])
            shown = axes.imshow(np.clip(values, 0.0, None), cmap="inferno", norm=norm, aspect=aspect, origin=origin)
            axes.set_title(f"{name}\n{view}" if row == 0 else view, fontsize=9)
            axes.set_xticks([])
            axes.set_yticks([])
            for text, position in (("R", (0.02, 0.5)), ("L", (0.98, 0.5)), (top, (0.5, 0.97)), (bottom, (0.5, 0.03))):
                axes.text(*position, text, transform=axes.transAxes, color="white", fontsize=8, ha="center",
                          va="center")  # fmt: skip
    colorbar = figure.colorbar(shown, cax=figure.add_subplot(grid[0:2, columns]))
    colorbar.set_label(f"{unit} (display gamma {DISPLAY_GAMMA:g})")
    if title:
        figure.suptitle(title, fontsize=11)

    axis = _AXES[profile]
    line = [z, y, x]
    line[axis] = slice(None)
    spacing_mm = truth.GetSpacing()[2 - axis]
    positions_mm = np.arange(shape[axis]) * spacing_mm
    axes = figure.add_subplot(grid[2, :columns])
    for name, values in volumes.items():
        width = 2.0 if name == TRUTH_NAME else 1.2
        axes.plot(positions_mm, values[tuple(line)], drawstyle="steps-mid", linewidth=width, label=name)
    axes.set_xlabel(f"{profile} (mm from the first voxel)")
    axes.set_ylabel(unit)
    axes.set_title(f"profile along {profile} through voxel (z, y, x) = {voxel}", fontsize=9)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path_png = Path(path_png)
    path_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path_png, format="png")
    return path_png


def _image_provenance(image: sitk.Image) -> dict[str, Any]:
    """Every provenance record the image carries: metadata key -> value (parsed when JSON).

    Every ``deepdosimetry.`` key (:mod:`DosimetryCore.core.metadata`) except the unit, the quantity
    and the label names is kept: the provenance record and facts such as a frame duration.
    """
    records = {}
    for key in image.GetMetaDataKeys():
        if key.startswith(KEY_PREFIX) and key not in DESCRIPTIVE_KEYS:
            text = image.GetMetaData(key)
            try:
                records[key] = json.loads(text)
            except ValueError:
                records[key] = text
    return records


def write_report(
    out_dir: str | os.PathLike,
    truth: sitk.Image,
    estimates: Mapping[str, sitk.Image],
    labelmap: sitk.Image | None = None,
    names: Mapping[int, str] | None = None,
    extra_volumes: Mapping[str, sitk.Image] | None = None,
    provenance: Mapping[str, Any] | None = None,
    title: str | None = None,
    slice_index: Sequence[int] | None = None,
) -> dict[str, Path]:
    """Compute the metrics and write ``metrics.csv``, ``report.png``, ``report.mrb`` and ``report.json``.

    ``title`` names the case on the figure; ``slice_index`` is the voxel its slices and profile go through
    (default: the truth's hottest, see :func:`report_figure`).

    The scene holds the truth (volume ``truth``), each estimate (named after its method), the
    ``extra_volumes`` (any 3D images, e.g. CT), the labelmap as segmentation ``segments`` when
    given and the metrics as table ``metrics`` (with units). ``report.json`` holds the rows, the
    units, ``provenance`` (JSON-serialisable) and each input image's own provenance records
    (metadata key -> record, :func:`_image_provenance`).
    Everything is validated and built before the first file is written: on ValueError nothing is.

    Returns:
        ``{"csv", "png", "mrb", "json"}`` -> written path.
    """
    from DosimetryCore.io import mrml

    rows = method_metrics(truth, estimates, labelmap, names)
    units = metric_units(rows)
    extra_volumes = dict(extra_volumes or {})
    for name, image in extra_volumes.items():
        require_image(image, f"extra volume {name!r}")
        if name == TRUTH_NAME or name in estimates:
            raise ValueError(f"extra volume {name!r}: the name is already used by the truth or a method")
    inputs = {TRUTH_NAME: truth, **estimates}
    document = {
        "metrics": rows,
        "units": units,
        "value_unit": _value_unit(truth),
        "provenance": dict(provenance or {}),
        "image_provenance": {name: _image_provenance(image) for name, image in inputs.items()},
    }
    try:
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise ValueError(f"provenance: cannot be written as JSON ({error})") from error

    scene = mrml.new_scene()
    for name, image in (inputs | extra_volumes).items():
        mrml.add_volume_node(scene, image, name)
    if labelmap is not None:
        mrml.add_segmentation_node(scene, labelmap, segment_names(labelmap, names), "segments")
    mrml.add_table_node(scene, rows, "metrics", units)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": write_csv(rows, out / "metrics.csv", units),
        "png": report_figure(truth, estimates, out / "report.png", slice_index=slice_index, title=title),
        "mrb": mrml.save_scene_bundle(scene, out / "report.mrb"),
        "json": out / "report.json",
    }
    paths["json"].write_text(text)
    return paths
