"""The bridge between MRML nodes and SimpleITK images: the only module that imports ``slicer``.

Slicer stores volumes in the RAS patient frame, ITK/SimpleITK (and DICOM) in LPS. The flip of
the first two axes happens here and nowhere else:

    direction_LPS = diag(-1, -1, 1) @ direction_RAS,   origin_LPS = diag(-1, -1, 1) @ origin_RAS

Works in the Slicer application and outside it with the ``slicer-core`` package (real MRML:
``vtkMRMLScene``, volume, segmentation and table nodes, segmentation logic).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from DosimetryCore.core.metadata import ACQUISITION_DATETIME_KEY, KEY_PREFIX, UNIT_KEY
from DosimetryCore.core.volume import require_image

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])

UNIT_ATTRIBUTE = "DeepDosimetry.Unit"
"""Node attribute holding the unit string of a volume's voxel values (e.g. ``"Bq/mL"``)."""

QUANTITY_ATTRIBUTE = "DeepDosimetry.Quantity"
"""Node attribute holding what a volume's voxel values are."""

ACQUISITION_DATETIME_ATTRIBUTE = "DeepDosimetry.Acquisition_datetime"
"""Node attribute holding when a volume's data were acquired (ISO 8601, local time)."""

PROVENANCE_ATTRIBUTE_PREFIX = "DeepDosimetry."
"""Image metadata keys ``deepdosimetry.<key>`` become node attributes ``DeepDosimetry.<key>``."""

# UCUM codes for the voxel-value units Slicer shows (vtkMRMLVolumeNode.SetVoxelValueUnits).
_UCUM = {
    "Bq/mL": ("Bq/mL", "becquerel per milliliter"),
    "Gy/h": ("Gy/h", "gray per hour"),
    "Gy": ("Gy", "gray"),
    "HU": ("[hnsf'U]", "Hounsfield unit"),
    "counts": ("{counts}", "counts"),
    "g/cm3": ("g/cm3", "gram per cubic centimeter"),
    "1/cm": ("/cm", "per centimeter"),
}


def new_scene() -> slicer.vtkMRMLScene:
    """An empty MRML scene that can also read bundles (it has a data I/O and cache manager).

    Inside the Slicer application use ``slicer.mrmlScene`` instead.
    """
    register_segmentation_converters()
    scene = slicer.vtkMRMLScene()
    cache = slicer.vtkCacheManager()
    cache.SetRemoteCacheDirectory(tempfile.mkdtemp(prefix="deepdosimetry-cache-"))
    data_io = slicer.vtkDataIOManager()
    data_io.SetCacheManager(cache)
    scene.SetCacheManager(cache)
    scene.SetDataIOManager(data_io)
    return scene


def _scene_of(scene: slicer.vtkMRMLScene | None, name: str) -> slicer.vtkMRMLScene:
    if scene is None or not isinstance(scene, slicer.vtkMRMLScene):
        raise ValueError(f"{name}: expected a vtkMRMLScene, got {type(scene).__name__}")
    return scene


def _require_node(node: object, class_name: str, name: str) -> None:
    if node is None or not hasattr(node, "IsA") or not node.IsA(class_name):
        raise ValueError(f"{name}: expected a {class_name}, got {type(node).__name__ if node is not None else None}")


def check_output_nodes(inputs: dict[str, object], output_volume=None, output_table=None) -> None:
    """Refuse output nodes that cannot take a module's results, before anything is computed or written: an
    output volume that is not a scalar volume node (or is a labelmap), an output table that is not a table
    node, or an output that is one of the ``inputs`` (name -> node), which are never modified."""
    if output_volume is not None and (
        not output_volume.IsA("vtkMRMLScalarVolumeNode") or output_volume.IsA("vtkMRMLLabelMapVolumeNode")
    ):
        raise ValueError(f"output volume: expected a scalar volume node, got {output_volume.GetClassName()}")
    if output_table is not None and not output_table.IsA("vtkMRMLTableNode"):
        raise ValueError(f"output table: expected a table node, got {output_table.GetClassName()}")
    for output, kind in ((output_volume, "output volume"), (output_table, "output table")):
        for name, node in inputs.items():
            if output is not None and output is node:
                raise ValueError(f"{kind}: is the {name} itself; inputs are never modified, choose another node")


def register_segmentation_converters() -> None:
    """Register the binary-labelmap <-> closed-surface converter rules once.

    The Slicer application does this when its Segmentations module starts; outside it, a
    segmentation node created before the rules exist cannot make its 3D representation.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    registered = {rule.GetName() for rule in factory.GetConverterRules()}
    for rule_class in (
        slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
        slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule,
    ):
        rule = rule_class()
        if rule.GetName() not in registered:
            factory.RegisterConverterRule(rule)


def _geometry_from_node(node: slicer.vtkMRMLVolumeNode) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(spacing, origin_LPS, direction_LPS 3x3) of a volume node."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASDirectionMatrix(matrix)
    direction_ras = np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
    return (
        np.array(node.GetSpacing(), dtype=float),
        _LPS_FROM_RAS @ np.array(node.GetOrigin(), dtype=float),
        _LPS_FROM_RAS @ direction_ras,
    )


def image_from_volume_node(node: slicer.vtkMRMLScalarVolumeNode) -> sitk.Image:
    """A SimpleITK image (LPS) holding a copy of a scalar (or labelmap) volume node's voxels.

    Spacing, origin and direction are kept exactly; the node's ``DeepDosimetry.*`` attributes (unit, quantity,
    frame duration, acquisition time, provenance) come back as ``deepdosimetry.*`` image metadata, and a volume
    loaded by Slicer's DICOM module gets its acquisition time from the DICOM database. A parent transform on the
    node is refused: harden it first.
    """
    _require_node(node, "vtkMRMLScalarVolumeNode", "volume node")
    if node.GetImageData() is None:
        raise ValueError(f"volume node {node.GetName()!r}: has no image data")
    if node.GetParentTransformNode() is not None:
        raise ValueError(f"volume node {node.GetName()!r}: is under a transform; harden the transform first")
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    image = sitk.GetImageFromArray(array)
    spacing, origin, direction = _geometry_from_node(node)
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(origin.tolist())
    image.SetDirection(direction.ravel().tolist())
    for attribute in node.GetAttributeNames() or ():
        if attribute.startswith(PROVENANCE_ATTRIBUTE_PREFIX) and node.GetAttribute(attribute):
            suffix = attribute[len(PROVENANCE_ATTRIBUTE_PREFIX) :]
            image.SetMetaData(KEY_PREFIX + suffix[:1].lower() + suffix[1:], node.GetAttribute(attribute))
    if not image.HasMetaDataKey(ACQUISITION_DATETIME_KEY):  # the attribute came back above when the node has it
        acquired = _dicom_database_acquisition(node)
        if acquired:
            image.SetMetaData(ACQUISITION_DATETIME_KEY, acquired)
    return image


def _dicom_database_acquisition(node: slicer.vtkMRMLScalarVolumeNode) -> str | None:
    """A volume loaded by Slicer's DICOM module: the acquisition time of its instances (ISO 8601), read from the
    application's DICOM database; None when the node has no instances or there is no database."""
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split()
    database = getattr(slicer, "dicomDatabase", None)
    if not uids or database is None:
        return None
    import pydicom

    from DosimetryCore.io.dicom_time import series_acquisition_datetime

    headers = []
    for uid in uids:
        path = database.fileForInstance(uid)
        if path:
            headers.append(pydicom.dcmread(path, stop_before_pixels=True))
    acquired = series_acquisition_datetime(headers)
    return acquired.isoformat(timespec="seconds") if acquired is not None else None


def warnings_of(volume_node) -> list[str]:
    """The warnings recorded in a volume node's provenance (empty when none): an input outside a model's training
    domain, a doubtful activity; what a panel shows after a run."""
    text = volume_node.GetAttribute(PROVENANCE_ATTRIBUTE_PREFIX + "Provenance")
    return list(json.loads(text).get("warnings", [])) if text else []


def update_volume_node_from_image(node: slicer.vtkMRMLScalarVolumeNode, image: sitk.Image) -> None:
    """Replace a volume node's voxels and geometry with ``image`` (LPS -> RAS here).

    Image metadata ``deepdosimetry.*`` (unit, quantity, provenance) becomes node attributes
    ``DeepDosimetry.*``; the unit is also set as the node's UCUM voxel-value unit where known.
    """
    _require_node(node, "vtkMRMLScalarVolumeNode", "volume node")
    require_image(image, "image")
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    direction_lps = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    direction_ras = _LPS_FROM_RAS @ direction_lps
    matrix = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, direction_ras[r, c])
    node.SetIJKToRASDirectionMatrix(matrix)
    node.SetSpacing(image.GetSpacing())
    node.SetOrigin((_LPS_FROM_RAS @ np.array(image.GetOrigin(), dtype=float)).tolist())
    for key in image.GetMetaDataKeys():
        if key.startswith(KEY_PREFIX):
            suffix = key[len(KEY_PREFIX):]
            node.SetAttribute(PROVENANCE_ATTRIBUTE_PREFIX + suffix[:1].upper() + suffix[1:], image.GetMetaData(key))
    unit = image.GetMetaData(UNIT_KEY) if image.HasMetaDataKey(UNIT_KEY) else None
    if unit in _UCUM:
        code, meaning = _UCUM[unit]
        entry = slicer.vtkCodedEntry()
        entry.SetValueSchemeMeaning(code, "UCUM", meaning)
        node.SetVoxelValueUnits(entry)


def add_volume_node(
    scene: slicer.vtkMRMLScene, image: sitk.Image, name: str, labelmap: bool = False
) -> slicer.vtkMRMLScalarVolumeNode:
    """Add a new scalar (or labelmap) volume node named ``name`` holding ``image`` to ``scene``."""
    scene = _scene_of(scene, "scene")
    require_image(image, "image")
    class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(class_name, name)
    update_volume_node_from_image(node, image)
    return node


def volume_into(
    node: slicer.vtkMRMLScalarVolumeNode | None, scene: slicer.vtkMRMLScene, image: sitk.Image, name: str
) -> slicer.vtkMRMLScalarVolumeNode:
    """``image`` written into the chosen output ``node``, or into a new node ``name`` of ``scene`` when none is
    chosen; returns the node."""
    if node is None:
        return add_volume_node(scene, image, name)
    update_volume_node_from_image(node, image)
    return node


def table_into(
    node: slicer.vtkMRMLTableNode | None,
    scene: slicer.vtkMRMLScene,
    rows: Sequence[Mapping[str, object]],
    name: str,
    units: Mapping[str, str] | None = None,
) -> slicer.vtkMRMLTableNode:
    """``rows`` written into the chosen output table ``node``, or into a new table ``name`` of ``scene``."""
    if node is None:
        return add_table_node(scene, rows, name, units)
    update_table_node(node, rows, units)
    return node


def _string_array(values: Sequence[str]) -> vtk.vtkStringArray:
    array = vtk.vtkStringArray()
    for value in values:
        array.InsertNextValue(value)
    return array


def _remove_with_display_and_colors(scene: slicer.vtkMRMLScene, labelmap_node: slicer.vtkMRMLVolumeNode) -> None:
    """Remove a temporary labelmap node with the display and color-table nodes made for it.

    Shared color tables (singletons such as Slicer's default "Labels") are left in place.
    """
    display = labelmap_node.GetDisplayNode()
    colors = display.GetColorNode() if display is not None else None
    if colors is not None and colors.GetSingletonTag():
        colors = None
    for node in (colors, display, labelmap_node):
        if node is not None and node.GetScene() is scene:
            scene.RemoveNode(node)


def labelmap_from_segmentation_node(
    segmentation_node: slicer.vtkMRMLSegmentationNode,
    reference_node: slicer.vtkMRMLScalarVolumeNode,
    segment_ids: Sequence[str] | None = None,
) -> tuple[sitk.Image, dict[int, str]]:
    """Rasterise segments onto ``reference_node``'s grid.

    Returns a uint16 SimpleITK labelmap (LPS, the reference's geometry) where segment k of
    ``segment_ids`` (default: all, in the segmentation's order) has label k + 1, and the mapping
    label -> segment name. Overlapping segments: the later segment wins, as in Slicer's export.
    """
    _require_node(segmentation_node, "vtkMRMLSegmentationNode", "segmentation node")
    _require_node(reference_node, "vtkMRMLScalarVolumeNode", "reference volume node")
    scene = reference_node.GetScene()
    if scene is None or segmentation_node.GetScene() is not scene:
        raise ValueError("segmentation node: must be in the same scene as the reference volume node")
    segmentation = segmentation_node.GetSegmentation()
    all_ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    ids = list(all_ids if segment_ids is None else segment_ids)
    if not ids:
        raise ValueError(f"segmentation node {segmentation_node.GetName()!r}: has no segments")
    unknown = [segment_id for segment_id in ids if segment_id not in all_ids]
    if unknown:
        raise ValueError(f"segment_ids: {unknown} not in segmentation {segmentation_node.GetName()!r}")
    labelmap_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__deepdosimetry_export")
    try:
        exported = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, _string_array(ids), labelmap_node, reference_node
        )
        if not exported:
            raise ValueError(f"segmentation node {segmentation_node.GetName()!r}: export to labelmap failed")
        labelmap = image_from_volume_node(labelmap_node)
    finally:
        _remove_with_display_and_colors(scene, labelmap_node)
    labelmap = sitk.Cast(labelmap, sitk.sitkUInt16)
    names = {index + 1: segmentation.GetSegment(segment_id).GetName() for index, segment_id in enumerate(ids)}
    return labelmap, names


def add_segmentation_node(
    scene: slicer.vtkMRMLScene, labelmap: sitk.Image, names: Mapping[int, str], name: str
) -> slicer.vtkMRMLSegmentationNode:
    """Add a segmentation node with one segment per label in ``names`` (label -> segment name).

    Every named label must occur in ``labelmap``; labels not in ``names`` are not imported.
    """
    scene = _scene_of(scene, "scene")
    require_image(labelmap, "labelmap")
    values = sitk.GetArrayViewFromImage(labelmap)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"labelmap: expected integer labels, got {values.dtype}")
    present = set(np.unique(values).tolist())
    missing = [f"{label} ({segment})" for label, segment in names.items() if label not in present]
    if missing:
        raise ValueError(f"names: labels {', '.join(missing)} are empty in the labelmap")
    if not names:
        raise ValueError("names: no segments to import")
    register_segmentation_converters()
    kept = np.where(np.isin(values, list(names)), values, 0).astype(np.int16)
    kept_image = sitk.GetImageFromArray(kept)
    kept_image.CopyInformation(labelmap)
    labelmap_node = add_volume_node(scene, kept_image, "__deepdosimetry_import", labelmap=True)
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    try:
        imported = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
            labelmap_node, segmentation_node
        )
        if not imported:
            raise ValueError(f"labelmap: import into segmentation {name!r} failed")
    finally:
        _remove_with_display_and_colors(scene, labelmap_node)
    segmentation = segmentation_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        segment.SetName(names[int(segment.GetLabelValue())])
    return segmentation_node


def update_table_node(
    table_node: slicer.vtkMRMLTableNode,
    rows: Sequence[Mapping[str, object]],
    units: Mapping[str, str] | None = None,
) -> None:
    """Replace a table node's content with one row per mapping (columns: the first row's keys).

    Columns whose values are all numbers become double columns, others string columns.
    ``units`` (column -> unit) sets each column's unit label. Invalid rows change nothing.
    """
    _require_node(table_node, "vtkMRMLTableNode", "table node")
    if not rows:
        raise ValueError("rows: the table has no rows")
    columns = list(rows[0])
    for index, row in enumerate(rows):
        if list(row) != columns:
            raise ValueError(f"rows: row {index} has columns {list(row)}, expected {columns}")
    unknown = [column for column in (units or {}) if column not in columns]
    if unknown:
        raise ValueError(f"units: columns {unknown} are not in the table")
    table_node.RemoveAllColumns()
    table = table_node.GetTable()
    for column in columns:
        values = [row[column] for row in rows]
        numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values)
        array = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        array.SetName(column)
        for value in values:
            array.InsertNextValue(float(value) if numeric else str(value))
        table.AddColumn(array)
    for column, unit in (units or {}).items():
        table_node.SetColumnUnitLabel(column, unit)
    table_node.Modified()


def add_table_node(
    scene: slicer.vtkMRMLScene,
    rows: Sequence[Mapping[str, object]],
    name: str,
    units: Mapping[str, str] | None = None,
) -> slicer.vtkMRMLTableNode:
    """Add a table node named ``name`` holding ``rows`` (see :func:`update_table_node`)."""
    scene = _scene_of(scene, "scene")
    if not rows:
        raise ValueError("rows: the table has no rows")
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    try:
        update_table_node(table_node, rows, units)
    except ValueError:
        scene.RemoveNode(table_node)
        raise
    return table_node


def add_plot_chart(
    scene: slicer.vtkMRMLScene,
    x: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    name: str,
    x_label: str,
    y_label: str,
) -> slicer.vtkMRMLPlotChartNode:
    """Add a plot chart node named ``name``: one line series per curve of ``curves`` over ``x``, its values in a
    table node ``<name> data`` (column ``x_label`` then one column per curve)."""
    scene = _scene_of(scene, "scene")
    if not curves:
        raise ValueError("curves: nothing to plot")
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} data")
    table = table_node.GetTable()
    columns = {x_label: x, **curves}
    for column_name, values in columns.items():
        if len(values) != len(x):
            raise ValueError(f"curves: {column_name} has {len(values)} values for {len(x)} x values")
        array = vtk.vtkDoubleArray()
        array.SetName(column_name)
        for value in values:
            array.InsertNextValue(float(value))
        table.AddColumn(array)
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(name)
    chart.SetXAxisTitle(x_label)
    chart.SetYAxisTitle(y_label)
    for curve in curves:
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name}: {curve}")
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName(x_label)
        series.SetYColumnName(curve)
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    table_node.Modified()
    return chart


def rows_from_table_node(table_node: slicer.vtkMRMLTableNode) -> list[dict[str, object]]:
    """The rows of a table node as dicts (numbers as float, the rest as str)."""
    _require_node(table_node, "vtkMRMLTableNode", "table node")
    table = table_node.GetTable()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = []
    for r in range(table.GetNumberOfRows()):
        row: dict[str, object] = {}
        for c, column in enumerate(names):
            value = table.GetValue(r, c)
            row[column] = value.ToDouble() if value.IsNumeric() else value.ToString()
        rows.append(row)
    return rows


@contextlib.contextmanager
def _kept_working_directory() -> Iterator[None]:
    """Restore the working directory: MRML's bundle reader changes it to a temporary folder it deletes."""
    directory = os.getcwd()
    try:
        yield
    finally:
        os.chdir(directory)


def save_scene_bundle(scene: slicer.vtkMRMLScene, path: str | os.PathLike) -> Path:
    """Write ``scene`` with all its data as a Slicer Medical Reality Bundle (``.mrb``)."""
    scene = _scene_of(scene, "scene")
    path = Path(path)
    if path.suffix.lower() != ".mrb":
        raise ValueError(f"path: {path.name} must end with .mrb")
    path.parent.mkdir(parents=True, exist_ok=True)
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        if node.IsA("vtkMRMLStorableNode") and node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
    with _kept_working_directory():
        written = scene.WriteToMRB(str(path.resolve()))
    if not written:
        raise ValueError(f"path: the scene could not be written to {path}")
    return path


def load_scene_bundle(path: str | os.PathLike) -> slicer.vtkMRMLScene:
    """Read a ``.mrb`` bundle into a new scene."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"path: {path} is not a readable Slicer scene bundle (not a zip archive)")
    scene = new_scene()
    with _kept_working_directory():
        loaded = scene.ReadFromMRB(str(path.resolve()))
    if not loaded:
        raise ValueError(f"path: {path} is not a readable Slicer scene bundle")
    return scene
