"""Write each module's Resources/UI/<Module>.ui from one description (run after changing it).

Usage: python scripts/make_module_ui.py

Each field widget (node selector, line edit, combo box, spin boxes) is bound to the module's
parameter node through its ``SlicerParameterName`` property; Slicer's parameter-node GUI connectors
fill combo boxes from the parameter's Choice and set spin-box ranges from its WithinRange. Every
panel ends with Apply, Cancel, a progress bar and a status line, which the widget drives through
DeepDosimetryCore.ProgressReporter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]


class Row(NamedTuple):
    """One form row: its label, the name of its field (the label widget is ``<name>Label``), the field's
    Qt Designer XML (a widget or a layout), and the widgets in it that take the module's MRML scene."""

    label: str
    name: str
    field: str
    scene_widgets: tuple[str, ...] = ()


def _property(name: str, kind: str, value: str) -> str:
    return f'<property name="{name}"><{kind}>{value}</{kind}></property>'


def _bound(widget_class: str, name: str, parameter: str, tip: str, *properties: str) -> str:
    return (
        f'<widget class="{widget_class}" name="{name}">'
        + _property("toolTip", "string", escape(tip))
        + "".join(properties)
        + _property("SlicerParameterName", "string", parameter)
        + "</widget>"
    )


def selector(
    label: str, name: str, parameter: str, node_class: str, none_enabled: bool, add_enabled: bool, tip: str
) -> Row:
    """A qMRMLNodeComboBox of ``node_class`` nodes bound to a node parameter."""
    boolean = {True: "true", False: "false"}
    widget = _bound(
        "qMRMLNodeComboBox",
        name,
        parameter,
        tip,
        f'<property name="nodeTypes"><stringlist><string>{node_class}</string></stringlist></property>',
        _property("showChildNodeTypes", "bool", "false"),
        _property("noneEnabled", "bool", boolean[none_enabled]),
        _property("addEnabled", "bool", boolean[add_enabled]),
        _property("removeEnabled", "bool", boolean[add_enabled]),
        _property("renameEnabled", "bool", "true"),
    )
    return Row(label, name, widget, (name,))


def line_edit(label: str, name: str, parameter: str, tip: str) -> Row:
    """A QLineEdit bound to a str parameter."""
    return Row(label, name, _bound("QLineEdit", name, parameter, tip))


def combo_box(label: str, name: str, parameter: str, tip: str) -> Row:
    """A QComboBox bound to a str parameter annotated with Choice (the connector fills in the items)."""
    return Row(label, name, _bound("QComboBox", name, parameter, tip))


def spin_box(label: str, name: str, parameter: str, tip: str) -> Row:
    """A QSpinBox bound to an int parameter (its range comes from the parameter's WithinRange)."""
    return Row(label, name, _bound("QSpinBox", name, parameter, tip))


def double_spin_boxes(
    label: str, name: str, boxes: Sequence[tuple[str, str]], tip: str, suffix: str, decimals: int, step: float
) -> Row:
    """QDoubleSpinBoxes side by side in the layout ``<name>Layout``, each ``(widget name, float parameter)``
    (range from the parameter's WithinRange)."""
    items = "".join(
        "<item>"
        + _bound(
            "QDoubleSpinBox",
            box,
            parameter,
            tip,
            _property("suffix", "string", escape(suffix)),
            _property("decimals", "number", str(decimals)),
            _property("singleStep", "double", f"{step:g}"),
        )
        + "</item>"
        for box, parameter in boxes
    )
    return Row(label, name, f'<layout class="QHBoxLayout" name="{name}Layout">{items}</layout>')


def check_box(label: str, name: str, parameter: str, tip: str) -> Row:
    """A QCheckBox bound to a bool parameter."""
    return Row(label, name, _bound("QCheckBox", name, parameter, tip))


def time_point(index: int) -> Row:
    """One time point of the absorbed-dose section: its dose-rate (or activity) volume, its CT and its hours after
    administration, side by side (parameters ``timePoint<i>Volume``, ``timePoint<i>Ct``, ``timePoint<i>Hours``)."""
    volume, ct = f"timePoint{index}VolumeSelector", f"timePoint{index}CtSelector"
    widgets = (
        selector("", volume, f"timePoint{index}Volume", "vtkMRMLScalarVolumeNode", True, False,
                 "Dose rate (Gy/h) of this time point, or its activity (Bq/mL; turned into a VDK dose rate).").field,
        selector("", ct, f"timePoint{index}Ct", "vtkMRMLScalarVolumeNode", True, False,
                 "CT (HU) of this time point: it is registered onto the first time point's CT.").field,
        _bound("QDoubleSpinBox", f"timePoint{index}HoursSpinBox", f"timePoint{index}Hours",
               "Hours after administration; 0 reads it from the volume's (else the CT's) DICOM acquisition time "
               "and the administration time below.",
               _property("suffix", "string", " h"), _property("decimals", "number", "1"),
               _property("singleStep", "double", "1")),
    )  # fmt: skip
    layout = "".join(f"<item>{widget}</item>" for widget in widgets)
    field = f'<layout class="QHBoxLayout" name="timePoint{index}Layout">{layout}</layout>'
    return Row(f"Time point {index}:", f"timePoint{index}", field, (volume, ct))


class Section(NamedTuple):
    """A collapsible section after the main form, with its own form rows and run buttons, each
    ``(widget name, text, tooltip)``."""

    title: str
    name: str
    rows: list[Row]
    buttons: tuple[tuple[str, str, str], ...]


TIME_POINTS = 5
"""Time points the DoseRateCNN panel's absorbed-dose section offers."""

def spin_boxes_row(label: str, name: str, boxes: Sequence[tuple[str, str]], tip: str) -> Row:
    """QSpinBoxes side by side in the layout ``<name>Layout``, each ``(widget name, int parameter)``."""
    items = "".join(f"<item>{_bound('QSpinBox', box, parameter, tip)}</item>" for box, parameter in boxes)
    return Row(label, name, f'<layout class="QHBoxLayout" name="{name}Layout">{items}</layout>')


# module -> [sections after the main form]
SECTIONS = {
    "PlanarTo3D": [
        Section(
            "3D activity (Lopez-Montes et al.)",
            "reconstruct",
            [
                selector("CT volume:", "ctVolumeSelector", "ctVolume", "vtkMRMLScalarVolumeNode", False, False,
                         "The patient's CT (HU): attenuation, the network grid and the output grid."),
                selector("Pre-therapy PET:", "petVolumeSelector", "petVolume", "vtkMRMLScalarVolumeNode", False,
                         False, "The pre-therapy PET (Bq/mL or SUV, any tracer) in the CT's frame of reference."),
                selector("Organs:", "organSegmentationSelector", "organSegmentation", "vtkMRMLSegmentationNode",
                         False, False, "Organ segmentation (e.g. TotalSegmentator's): the regions of the "
                         "patient-specific variations and the rows of the table."),
                double_spin_boxes("Planar sensitivity:", "sensitivity",
                                  [("sensitivitySpinBox", "sensitivityCpsPerMBq")],
                                  "The camera's planar sensitivity, one head, 208 keV window (cps/MBq).", " cps/MBq",
                                  2, 0.1),
                combo_box("Generic model:", "modelComboBox", "modelName",
                          "The installed generic ResUNet (used when no patient model is given)."),
                line_edit("Patient model folder:", "patientFolderLineEdit", "patientModelFolder",
                          "Folder of the patient model: 'Train patient model' writes it (checkpoints, resumable); "
                          "'Reconstruct' uses it when it holds one, else the generic model."),
                spin_boxes_row("Variations, epochs:", "fineTuning",
                               [("variationsSpinBox", "variations"), ("epochsSpinBox", "epochs")],
                               "Patient-specific training: PET variations (Lopez-Montes et al.: 100) and epochs."),
                selector("Activity volume:", "activityVolumeSelector", "activityVolume", "vtkMRMLScalarVolumeNode",
                         True, True, "Volume node to receive the 3D activity (Bq/mL) on the CT grid."),
                selector("Organ table:", "organTableSelector", "organTable", "vtkMRMLTableNode", True, True,
                         "Table node to receive each organ's activity, mean concentration and the conjugate-view "
                         "activity beside it."),
                combo_box("Method:", "methodComboBox", "method",
                          "ResUNet: the supervised network (Lopez-Montes et al.). Diffusion: samples of a slice "
                          "diffusion prior kept consistent with the planar images (DDS); their mean is the activity, "
                          "their standard deviation the uncertainty."),
                combo_box("Diffusion prior:", "diffusionModelComboBox", "diffusionModelName",
                          "The installed generic slice diffusion prior (method Diffusion, when no patient model is "
                          "given)."),
                spin_box("Diffusion samples:", "samplesSpinBox", "samples",
                         "Method Diffusion: samples K (about half a minute each on one CPU thread); their spread gives "
                         "the uncertainty volume and each organ's spread."),
                selector("Uncertainty volume:", "uncertaintyVolumeSelector", "uncertaintyVolume",
                         "vtkMRMLScalarVolumeNode", True, True,
                         "Method Diffusion: volume node to receive the per-voxel standard deviation of the samples "
                         "(Bq/mL) on the CT grid."),
            ],
            (("trainButton", "Train patient model",
              "Fine-tune the generic model on variations of the patient's PET into the patient model folder "
              "(resumes an interrupted run)."),
             ("reconstructButton", "Reconstruct", "3D activity from the imported anterior/posterior views.")),
        )
    ],
    "DoseRateCNN": [
        Section(
            "Absorbed dose (several time points)",
            "absorbed",
            [
                *(time_point(index) for index in range(1, TIME_POINTS + 1)),
                line_edit("Administration time:", "administrationLineEdit", "administrationTime",
                          "Date and time of the administration (local, e.g. 2026-11-30T10:15): time points whose hours "
                          "are 0 are read from their DICOM acquisition times."),
                combo_box("Time-activity model:", "timeModelComboBox", "timeModel",
                          "AICc: per segment the mono- or bi-exponential fit with the smallest corrected Akaike "
                          "criterion; or mono, bi, trapezoid (with a physical-decay tail) for every segment."),
                double_spin_boxes("Effective half-life:", "effectiveHalfLife",
                                  [("effectiveHalfLifeSpinBox", "effectiveHalfLifeHours")],
                                  "Only with one time point (Hanscheid's single-time-point method): the effective "
                                  "half-life in hours.", " h", 1, 1.0),
                selector("Segmentation:", "absorbedSegmentationSelector", "absorbedSegmentation",
                         "vtkMRMLSegmentationNode", True, False,
                         "Segments on the first time point: the table rows, time-dose-rate curves and DVHs."),
                check_box("Register time points:", "registerCheckBox", "registerTimePoints",
                          "Register each CT rigidly onto the first time point's CT and move its dose rate with it "
                          "(off: the volumes are taken as aligned)."),
                check_box("Deformable refinement:", "deformableCheckBox", "deformable",
                          "Refine each rigid registration by a B-spline deformation."),
                selector("Absorbed-dose volume:", "absorbedVolumeSelector", "absorbedVolume",
                         "vtkMRMLScalarVolumeNode", True, True,
                         "Volume node to receive the absorbed dose in Gy. A new one is created when empty."),
                selector("Absorbed-dose table:", "absorbedTableSelector", "absorbedTable", "vtkMRMLTableNode", True,
                         True, "Table node to receive the per-segment absorbed doses. A new one is created when "
                         "empty."),
            ],
            (("absorbedButton", "Compute absorbed dose",
              "Integrate the time points' dose rates into the absorbed dose (Gy)."),),
        )
    ],
}  # fmt: skip

# module -> (panel help line, [form rows])
PANELS = {
    "PlanarTo3D": (
        "Import anterior/posterior NM planar DICOM as two volumes and a counts table; then, with the pre-therapy "
        "PET/CT and the organs, reconstruct the 3D activity below.",
        [
            line_edit("Planar DICOM files:", "planarFilesLineEdit", "planarFiles",
                      "One multi-frame NM file with both views, or two single-view files (separated by ';')."),
            selector("Anterior volume:", "anteriorSelector", "anteriorVolume", "vtkMRMLScalarVolumeNode", True, True,
                     "Volume node to receive the anterior view (counts). A new one is created when empty."),
            selector("Posterior volume:", "posteriorSelector", "posteriorVolume", "vtkMRMLScalarVolumeNode", True,
                     True,
                     "Volume node to receive the posterior view (counts, mirrored into the anterior orientation)."),
            selector("Counts table:", "countsTableSelector", "countsTable", "vtkMRMLTableNode", True, True,
                     "Table node to receive total counts, frame duration and count rate per view."),
        ],
    ),
    "DLPVC": (
        "Partial-volume correction of quantitative 177Lu SPECT (Bq/mL): IY-PVC (iterative Yang, needs a "
        "segmentation and the PSF FWHM) or DL-PVC (a trained network, offered when one is installed).",
        [
            selector("SPECT volume:", "inputVolumeSelector", "inputVolume", "vtkMRMLScalarVolumeNode", False, False,
                     "Quantitative SPECT in Bq/mL. It is never modified."),
            combo_box("Method:", "methodComboBox", "method",
                      "IY-PVC: iterative Yang with the segments as regions. DL-PVC: the installed network, applied to "
                      "the whole field of view; it keeps the total activity."),
            selector("Segmentation:", "segmentationSelector", "segmentation", "vtkMRMLSegmentationNode", True, False,
                     "Segments (organs, lesions): the IY-PVC regions (required) and the rows of the table "
                     "(optional for DL-PVC). It is never modified."),
            double_spin_boxes("PSF FWHM (x, y, z):", "fwhm",
                              [("fwhmXSpinBox", "fwhmXMm"), ("fwhmYSpinBox", "fwhmYMm"), ("fwhmZSpinBox", "fwhmZMm")],
                              "IY-PVC: full width at half maximum (mm) of the reconstructed SPECT's resolution along "
                              "the volume's x, y, z axes. Default: Siemens MELP collimator at 200 mm.",
                              " mm", 1, 0.5),
            spin_box("Iterations:", "iterationsSpinBox", "iterations",
                     "IY-PVC: number of iterations (10 in Leube et al.)."),
            combo_box("Device:", "deviceComboBox", "device",
                      "DL-PVC: where the network runs; auto uses CUDA when available."),
            selector("Corrected volume:", "outputVolumeSelector", "outputVolume", "vtkMRMLScalarVolumeNode", True,
                     True, "Volume node to receive the corrected SPECT (Bq/mL). A new one is created when empty."),
            selector("Segment table:", "outputTableSelector", "outputTable", "vtkMRMLTableNode", True, True,
                     "Table node to receive, per segment, volume (mL), mean activity concentration before and after "
                     "(Bq/mL) and activity before and after (MBq). A new one is created when empty."),
        ],
    ),
    "DoseRateCNN": (
        "Absorbed dose rate (Gy/h) of 177Lu from activity (Bq/mL) and CT: the residual CNN on the VDK dose rate "
        "(Li et al.), voxel dose kernels with density scaling (VDK), local energy deposition (LED) or Monte Carlo "
        "(MC).",
        [
            selector("Activity volume:", "activityVolumeSelector", "activityVolume", "vtkMRMLScalarVolumeNode", False,
                     False, "Quantitative SPECT activity concentration (Bq/mL). It is never modified."),
            selector("CT volume:", "ctVolumeSelector", "ctVolume", "vtkMRMLScalarVolumeNode", False, False,
                     "CT in Hounsfield units, resampled onto the activity grid. It is never modified."),
            combo_box("Method:", "methodComboBox", "method",
                      "CNN (residual on VDK): the installed network corrects the VDK dose rate; it warns when the "
                      "input is outside its training domain. vdk: 177Lu voxel S-value kernel of the activity voxel "
                      "size, times 1.04 g/cm3 over the CT density (Li et al.). led: electron energy deposited in the "
                      "decay voxel. mc: Monte Carlo."),
            selector("Segmentation:", "segmentationSelector", "segmentation", "vtkMRMLSegmentationNode", True, False,
                     "Optional segments for the table of mass, mean, max and D2/D50/D98 % dose rates and the "
                     "dose-rate-volume histogram chart."),
            combo_box("Device:", "deviceComboBox", "device",
                      "Where the computation runs; auto uses CUDA when available."),
            selector("Dose-rate volume:", "outputVolumeSelector", "outputVolume", "vtkMRMLScalarVolumeNode", True,
                     True, "Volume node to receive the dose rate in Gy/h. A new one is created when empty."),
            selector("Dose-rate table:", "outputTableSelector", "outputTable", "vtkMRMLTableNode", True, True,
                     "Table node to receive the per-segment dose rates. A new one is created when empty."),
        ],
    ),
}


def _form_items(module: str, rows: Sequence[Row], first_row: int) -> tuple[list[str], list[str]]:
    """The form layout items of ``rows`` from ``first_row`` on, and their scene connections."""
    items, connections = [], []
    for index, row in enumerate(rows, start=first_row):
        items.append(
            f'<item row="{index}" column="0"><widget class="QLabel" name="{row.name}Label">'
            f'{_property("text", "string", escape(row.label))}</widget></item>'
        )
        items.append(f'<item row="{index}" column="1">{row.field}</item>')
        connections += [
            f"<connection><sender>{module}</sender><signal>mrmlSceneChanged(vtkMRMLScene*)</signal>"
            f"<receiver>{name}</receiver><slot>setMRMLScene(vtkMRMLScene*)</slot></connection>"
            for name in row.scene_widgets
        ]
    return items, connections


def _section(module: str, section: Section) -> tuple[str, list[str]]:
    """A section's collapsible button (collapsed at first) with its form and run button, and its connections."""
    items, connections = _form_items(module, section.rows, 0)
    button = (
        f'<item row="{len(section.rows)}" column="0" colspan="2"><layout class="QHBoxLayout" '
        f'name="{section.name}ButtonLayout">'
        + "".join(
            f'<item><widget class="QPushButton" name="{name}">'
            + _property("enabled", "bool", "false")
            + _property("text", "string", escape(text))
            + _property("toolTip", "string", escape(tip))
            + "</widget></item>"
            for name, text, tip in section.buttons
        )
        + "</layout></item>"
    )
    body = (
        f'<item><widget class="ctkCollapsibleButton" name="{section.name}CollapsibleButton">'
        + _property("text", "string", escape(section.title))
        + _property("collapsed", "bool", "true")
        + f'<layout class="QFormLayout" name="{section.name}FormLayout">'
        + "".join(items)
        + button
        + "</layout></widget></item>"
    )
    return body, connections


def module_ui(module: str) -> str:
    """The Qt Designer XML of ``module``'s panel."""
    help_line, rows = PANELS[module]
    items = [
        f'<item row="0" column="0" colspan="2"><widget class="QLabel" name="helpLabel">'
        f'{_property("text", "string", escape(help_line))}{_property("wordWrap", "bool", "true")}</widget></item>'
    ]
    row_items, connections = _form_items(module, rows, 1)
    items += row_items
    sections = ""
    for section in SECTIONS.get(module, []):
        body, section_connections = _section(module, section)
        sections += body
        connections += section_connections
    buttons = (
        '<item><layout class="QHBoxLayout" name="buttonLayout">'
        '<item><widget class="QPushButton" name="applyButton">'
        + _property("enabled", "bool", "false")
        + _property("text", "string", "Apply")
        + '</widget></item><item><widget class="QPushButton" name="cancelButton">'
        + _property("enabled", "bool", "false")
        + _property("text", "string", "Cancel")
        + "</widget></item></layout></item>"
        '<item><widget class="QProgressBar" name="progressBar">'
        + _property("visible", "bool", "false")
        + _property("value", "number", "0")
        + '</widget></item><item><widget class="QLabel" name="statusLabel">'
        + _property("wordWrap", "bool", "true")
        + '</widget></item><item><spacer name="verticalSpacer">'
        '<property name="orientation"><enum>Qt::Vertical</enum></property></spacer></item>'
    )
    body = (
        f'<widget class="qMRMLWidget" name="{module}"><layout class="QVBoxLayout" name="verticalLayout">'
        '<item><widget class="ctkCollapsibleButton" name="inputsCollapsibleButton">'
        + _property("text", "string", "Inputs and outputs")
        + '<layout class="QFormLayout" name="formLayout">'
        + "".join(items)
        + "</layout></widget></item>"
        + sections
        + buttons
        + "</layout></widget>"
    )
    custom = "".join(
        f"<customwidget><class>{name}</class><extends>{base}</extends><header>{name}.h</header>"
        f"{'<container>1</container>' if container else ''}</customwidget>"
        for name, base, container in (
            ("ctkCollapsibleButton", "QWidget", True),
            ("qMRMLNodeComboBox", "QWidget", False),
            ("qMRMLWidget", "QWidget", True),
        )
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ui version="4.0">'
        f"<class>{module}</class>{body}<customwidgets>{custom}</customwidgets><resources/>"
        f"<connections>{''.join(connections)}</connections></ui>\n"
    )


def main() -> None:
    for module in PANELS:
        path = ROOT / module / "Resources" / "UI" / f"{module}.ui"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(module_ui(module))
        print(path)


if __name__ == "__main__":
    main()
