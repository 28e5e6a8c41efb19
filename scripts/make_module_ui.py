"""Write each module's Resources/UI/<Module>.ui from one description (run after changing it).

Usage: python scripts/make_module_ui.py

Each selector is a qMRMLNodeComboBox bound to the module's parameter node through its
``SlicerParameterName`` property; every panel ends with Apply, Cancel, a progress bar and a status
line, which the widget drives through DeepDosimetryCore.ProgressReporter.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]

# module -> (panel help line, [(label, widget name, parameter, node class, none enabled, add enabled, tooltip)])
PANELS = {
    "PlanarTo3D": (
        "Import anterior/posterior NM planar DICOM as two volumes and a counts table.",
        [
            ("Planar DICOM files:", "planarFilesLineEdit", "planarFiles", None, False, False,
             "One multi-frame NM file with both views, or two single-view files (separated by ';')."),
            ("Anterior volume:", "anteriorSelector", "anteriorVolume", "vtkMRMLScalarVolumeNode", True, True,
             "Volume node to receive the anterior view (counts). A new one is created when empty."),
            ("Posterior volume:", "posteriorSelector", "posteriorVolume", "vtkMRMLScalarVolumeNode", True, True,
             "Volume node to receive the posterior view (counts, mirrored into the anterior orientation)."),
            ("Counts table:", "countsTableSelector", "countsTable", "vtkMRMLTableNode", True, True,
             "Table node to receive total counts, frame duration and count rate per view."),
        ],
    ),
    "DLPVC": (
        "Per-segment activity of a quantitative 177Lu SPECT volume (Bq/mL).",
        [
            ("SPECT volume:", "inputVolumeSelector", "inputVolume", "vtkMRMLScalarVolumeNode", False, False,
             "Quantitative SPECT in Bq/mL. It is never modified."),
            ("Segmentation:", "segmentationSelector", "segmentation", "vtkMRMLSegmentationNode", False, False,
             "Segments (organs, lesions) in which activity is reported."),
            ("Segment table:", "outputTableSelector", "outputTable", "vtkMRMLTableNode", True, True,
             "Table node to receive volume (mL), mean and max (Bq/mL) and activity (MBq) per segment."),
        ],
    ),
    "DoseRateCNN": (
        "Mass density (g/cm3) from CT, on the grid of the activity volume, as used for dose-rate scaling.",
        [
            ("CT volume:", "ctVolumeSelector", "ctVolume", "vtkMRMLScalarVolumeNode", False, False,
             "CT in Hounsfield units. It is never modified."),
            ("Activity volume:", "activityVolumeSelector", "activityVolume", "vtkMRMLScalarVolumeNode", True, False,
             "Optional SPECT activity (Bq/mL) whose grid the density map is resampled onto."),
            ("Density volume:", "densityVolumeSelector", "densityVolume", "vtkMRMLScalarVolumeNode", True, True,
             "Volume node to receive the mass density in g/cm3. A new one is created when empty."),
        ],
    ),
}


def _property(name: str, kind: str, value: str) -> str:
    return f'<property name="{name}"><{kind}>{value}</{kind}></property>'


def _selector(name: str, parameter: str, node_class: str, none_enabled: bool, add_enabled: bool, tip: str) -> str:
    boolean = {True: "true", False: "false"}
    return (
        f'<widget class="qMRMLNodeComboBox" name="{name}">'
        + _property("toolTip", "string", escape(tip))
        + f'<property name="nodeTypes"><stringlist><string>{node_class}</string></stringlist></property>'
        + _property("showChildNodeTypes", "bool", "false")
        + _property("noneEnabled", "bool", boolean[none_enabled])
        + _property("addEnabled", "bool", boolean[add_enabled])
        + _property("removeEnabled", "bool", boolean[add_enabled])
        + _property("renameEnabled", "bool", "true")
        + _property("SlicerParameterName", "string", parameter)
        + "</widget>"
    )


def _line_edit(name: str, parameter: str, tip: str) -> str:
    return (
        f'<widget class="QLineEdit" name="{name}">'
        + _property("toolTip", "string", escape(tip))
        + _property("SlicerParameterName", "string", parameter)
        + "</widget>"
    )


def module_ui(module: str) -> str:
    """The Qt Designer XML of ``module``'s panel."""
    help_line, rows = PANELS[module]
    items = [
        f'<item row="0" column="0" colspan="2"><widget class="QLabel" name="helpLabel">'
        f'{_property("text", "string", escape(help_line))}{_property("wordWrap", "bool", "true")}</widget></item>'
    ]
    connections = []
    for row, (label, name, parameter, node_class, none_enabled, add_enabled, tip) in enumerate(rows, start=1):
        items.append(
            f'<item row="{row}" column="0"><widget class="QLabel" name="{name}Label">'
            f'{_property("text", "string", escape(label))}</widget></item>'
        )
        widget = (
            _line_edit(name, parameter, tip)
            if node_class is None
            else _selector(name, parameter, node_class, none_enabled, add_enabled, tip)
        )
        items.append(f'<item row="{row}" column="1">{widget}</item>')
        if node_class is not None:
            connections.append(
                f"<connection><sender>{module}</sender><signal>mrmlSceneChanged(vtkMRMLScene*)</signal>"
                f"<receiver>{name}</receiver><slot>setMRMLScene(vtkMRMLScene*)</slot></connection>"
            )
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
