"""The Slicer module files: template shape, parameter node <-> .ui binding, icons, import rules.

The module files need the Slicer application (qt, ScriptedLoadableModule) to run, so here they are
checked by reading their source; their logic is exercised by the <Module>Lib tests on real MRML.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]
MODULES = ("PlanarTo3D", "DLPVC", "DoseRateCNN")
WIDGETS_USED_BY_THE_SHARED_PANEL = {"applyButton", "cancelButton", "progressBar", "statusLabel"}


def _classes(module: str) -> dict[str, ast.ClassDef]:
    tree = ast.parse((REPOSITORY / module / f"{module}.py").read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _ui(module: str) -> ElementTree.Element:
    return ElementTree.parse(REPOSITORY / module / "Resources" / "UI" / f"{module}.ui").getroot()


def _bound_parameters(root: ElementTree.Element) -> set[str]:
    return {
        prop.findtext("string")
        for prop in root.iter("property")
        if prop.get("name") == "SlicerParameterName"
    }


@pytest.mark.parametrize("module", MODULES)
def test_module_file_follows_the_scripted_module_template(module):
    classes = _classes(module)
    bases = {name: {ast.unparse(base) for base in node.bases} for name, node in classes.items()}
    assert bases[module] == {"ScriptedLoadableModule"}
    assert "ScriptedLoadableModuleWidget" in bases[f"{module}Widget"]
    assert bases[f"{module}Logic"] == {"ScriptedLoadableModuleLogic"}
    assert bases[f"{module}Test"] == {"ScriptedLoadableModuleTest"}
    parameter_node = classes[f"{module}ParameterNode"]
    assert [ast.unparse(d) for d in parameter_node.decorator_list] == ["parameterNodeWrapper"]
    test_methods = [n.name for n in classes[f"{module}Test"].body if isinstance(n, ast.FunctionDef)]
    assert "runTest" in test_methods and any(name.startswith("test_") for name in test_methods)


@pytest.mark.parametrize("module", MODULES)
def test_parameter_node_fields_are_exactly_the_ui_bindings(module):
    parameter_node = _classes(module)[f"{module}ParameterNode"]
    fields = {node.target.id for node in parameter_node.body if isinstance(node, ast.AnnAssign)}
    assert fields == _bound_parameters(_ui(module))


@pytest.mark.parametrize("module", MODULES)
def test_ui_has_the_widgets_the_code_uses(module):
    names = {widget.get("name") for widget in _ui(module).iter("widget")}
    source = (REPOSITORY / module / f"{module}.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", source)) | WIDGETS_USED_BY_THE_SHARED_PANEL
    assert used <= names
    assert _ui(module).find("widget").get("class") == "qMRMLWidget"


@pytest.mark.parametrize("module", MODULES)
def test_committed_ui_is_what_the_generator_writes(module):
    spec = importlib.util.spec_from_file_location("make_module_ui", REPOSITORY / "scripts" / "make_module_ui.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert (REPOSITORY / module / "Resources" / "UI" / f"{module}.ui").read_text() == generator.module_ui(module)


@pytest.mark.parametrize(
    "path",
    [f"{m}/Resources/Icons/{m}.png" for m in MODULES]
    + ["Resources/Icons/DeepDosimetry.png", "DeepDosimetryCore/Resources/Icons/DeepDosimetryCore.png"],
)
def test_icons_are_128_pixel_pngs(path):
    with Image.open(REPOSITORY / path) as icon:
        assert icon.format == "PNG"
        assert icon.size == (128, 128)
        pixels = np.asarray(icon.convert("RGBA")).reshape(-1, 4)
        assert len(np.unique(pixels, axis=0)) >= 3


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _library_files() -> dict[str, list[Path]]:
    packages = {"DosimetryCore": REPOSITORY / "DeepDosimetryCore" / "DosimetryCore"}
    packages |= {f"{m}Lib": REPOSITORY / m / f"{m}Lib" for m in MODULES}
    return {name: sorted(folder.rglob("*.py")) for name, folder in packages.items()}


def test_only_the_mrml_bridge_imports_slicer_and_no_gui_anywhere_in_the_libraries():
    for files in _library_files().values():
        for path in files:
            imported = _imports(path)
            assert not imported & {"qt", "ctk", "slicer", "vtk"} or path.name == "mrml.py", path
            assert not imported & {"qt", "ctk"}, path


def test_dependencies_point_one_way():
    libraries = {f"{m}Lib" for m in MODULES}
    for package, files in _library_files().items():
        for path in files:
            forbidden = libraries if package == "DosimetryCore" else libraries - {package}
            assert not _imports(path) & forbidden, path
