"""The rules of ARCHITECTURE.md, checked on the source: import directions, file sizes, one home each.

- Dependencies point one way: a module file -> its Lib -> DosimetryCore; no Lib imports another Lib.
- Inside DosimetryCore, ``core`` imports no other subpackage, and physics and imaging never import
  learning.
- argparse is used only in cli files; metadata keys are spelled only in ``core/metadata.py``;
  no library file is longer than 500 lines.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
CORE = REPOSITORY / "DeepDosimetryCore" / "DosimetryCore"
MODULES = ("PlanarTo3D", "DLPVC", "DoseRateCNN")
LIBRARIES = {f"{module}Lib": REPOSITORY / module / f"{module}Lib" for module in MODULES}
MAX_LINES = 500


def _package_of(path: Path) -> str:
    """Dotted name of the module at ``path`` (``DosimetryCore.dose.vdk``, ``DLPVCLib.cli``)."""
    for name, folder in {"DosimetryCore": CORE, **LIBRARIES}.items():
        if folder in path.parents:
            parts = path.relative_to(folder).with_suffix("").parts
            return ".".join((name, *parts))
    raise AssertionError(path)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute dotted names; relative imports resolved), anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(path).split(".")
                keep = len(base) - node.level + (path.name == "__init__.py")
                base = base[:keep]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def _library_files() -> list[Path]:
    folders = [CORE, *LIBRARIES.values()]
    return sorted(path for folder in folders for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", _library_files(), ids=lambda p: str(p.relative_to(REPOSITORY)))
def test_library_imports_point_one_way(path):
    imported = imported_modules(path)
    package = _package_of(path)
    libraries_used = {_top(name) for name in imported} & set(LIBRARIES)
    if package.startswith("DosimetryCore"):
        assert not libraries_used, f"{path}: the core imports {libraries_used}"
        concept = package.split(".")[1] if package.count(".") >= 1 else ""
        core_subpackages = {name.split(".")[1] for name in imported if name.startswith("DosimetryCore.")}
        if concept == "core":
            assert core_subpackages <= {"core", "__version__"}, f"{path}: core imports {core_subpackages}"
        if concept in ("physics", "imaging"):
            assert "learning" not in core_subpackages, f"{path}: {concept} imports learning"
    else:
        own = _top(package)
        assert libraries_used <= {own}, f"{path}: {own} imports {libraries_used - {own}}"
    assert not {_top(name) for name in imported} & {"qt", "ctk"}, path
    if path != CORE / "io" / "mrml.py":
        assert not {_top(name) for name in imported} & {"slicer", "vtk"}, f"{path}: only io/mrml.py imports slicer"


@pytest.mark.parametrize("module", MODULES)
def test_module_files_use_only_their_lib_and_the_core(module):
    imported = {_top(name) for name in imported_modules(REPOSITORY / module / f"{module}.py")}
    assert not imported & (set(LIBRARIES) - {f"{module}Lib"})


def test_no_library_file_is_longer_than_500_lines():
    lengths = {str(p.relative_to(REPOSITORY)): len(p.read_text().splitlines()) for p in _library_files()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_argparse_only_in_cli_files():
    users = [p for p in _library_files() if "argparse" in imported_modules(p)]
    assert all(p.name == "cli.py" or p.parent.name == "cli" for p in users), users


def test_metadata_keys_are_spelled_only_in_the_metadata_module():
    key = re.compile(r"""["']deepdosimetry\.(?!commands["']|training["'])[a-z_]+["']""")
    files = [*_library_files(), *(REPOSITORY / m / f"{m}.py" for m in MODULES)]
    spelled = [str(p.relative_to(REPOSITORY)) for p in files if key.search(p.read_text())]
    assert spelled == []


@pytest.mark.parametrize("module", MODULES)
def test_panels_import_only_torch_free_lib_modules_at_load_time(module):
    tree = ast.parse((REPOSITORY / module / f"{module}.py").read_text())
    top_level = {node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    lib_modules = sorted(name for name in top_level if _top(name) in LIBRARIES | {"DosimetryCore": CORE})
    assert all(name.endswith(".constants") for name in lib_modules if _top(name) in LIBRARIES), lib_modules
    code = "import sys\n" + "".join(f"import {name}\n" for name in lib_modules) + "print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_panel_method_lists_are_the_library_ones():
    from DoseRateCNNLib.constants import CONVENTIONAL_METHODS
    from DosimetryCore.dose import METHODS as CORE_METHODS

    assert CONVENTIONAL_METHODS == CORE_METHODS
