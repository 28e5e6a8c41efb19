"""Packaging consistency: every file a CMakeLists.txt names exists, and every module file is named.

A resource missing from MODULE_PYTHON_RESOURCES never reaches the packaged extension, and a test
registered under a misspelled name never runs; this check catches both before Slicer's build does.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
MODULE_FOLDERS = ("DeepDosimetryCore", "PlanarTo3D", "DLPVC", "DoseRateCNN")
PACKAGED_SUFFIXES = (".py", ".ui", ".png", ".pt", ".pth", ".safetensors", ".onnx", ".json", ".md", ".txt")
SKIPPED_PARTS = {"__pycache__", "Testing", ".pytest_cache"}


def _commands(text: str) -> list[tuple[str, list[str]]]:
    """(command name lower-case, argument tokens) of each CMake command, comments removed."""
    text = re.sub(r"#[^\n]*", "", text)
    return [
        (name.lower(), re.findall(r'"[^"]*"|[^\s()]+', body))
        for name, body in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(([^()]*)\)", text)
    ]


def _expand(token: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1), m.group(0)), token.strip('"'))


def cmake_problems(root: Path) -> list[str]:
    """Everything wrong with the CMake packaging of the extension rooted at ``root``."""
    problems: list[str] = []
    named: dict[str, set[Path]] = {folder: set() for folder in MODULE_FOLDERS}

    def visit(folder: Path, variables: dict[str, str]) -> None:
        cmake = folder / "CMakeLists.txt"
        if not cmake.is_file():
            problems.append(f"{folder.relative_to(root)}: no CMakeLists.txt")
            return
        variables = dict(variables, CMAKE_CURRENT_SOURCE_DIR=str(folder))
        module_folder = folder.relative_to(root).parts[0] if folder != root else None
        for command, args in _commands(cmake.read_text()):
            where = f"{cmake.relative_to(root)}: {command}"
            if command == "set" and args and args[0] == "MODULE_NAME":
                variables["MODULE_NAME"] = args[1]
            elif command == "set" and args and args[0] in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
                for token in args[1:]:
                    path = folder / _expand(token, variables)
                    if not path.is_file():
                        problems.append(f"{where} names missing file {token}")
                    elif module_folder in named:
                        named[module_folder].add(path.resolve())
            elif command == "add_subdirectory":
                visit(folder / _expand(args[0], variables), variables)
            elif command == "slicer_add_python_unittest":
                script = Path(_expand(args[args.index("SCRIPT") + 1], variables))
                if not (script if script.is_absolute() else folder / script).resolve().is_file():
                    problems.append(f"{where} registers missing test script {args[args.index('SCRIPT') + 1]}")
            elif command == "install" and "DIRECTORY" in args:
                for token in args[args.index("DIRECTORY") + 1 : args.index("DESTINATION")]:
                    if not Path(_expand(token, variables)).resolve().is_dir():
                        problems.append(f"{where} installs missing folder {token}")

    visit(root, {})
    for folder in MODULE_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root / folder)
            if path.is_file() and path.suffix in PACKAGED_SUFFIXES and not SKIPPED_PARTS & set(relative.parts):
                if path.name != "CMakeLists.txt" and path.resolve() not in named[folder]:
                    problems.append(f"{folder}/{relative} is not named in {folder}/CMakeLists.txt")
    return problems


def test_extension_packaging_is_consistent():
    assert cmake_problems(REPOSITORY) == []


def test_every_module_is_built_with_generic_tests_and_a_registered_self_test():
    top = (REPOSITORY / "CMakeLists.txt").read_text()
    assert "find_package(Slicer REQUIRED)" in top
    for folder in MODULE_FOLDERS:
        assert f"add_subdirectory({folder})" in top
    for module in MODULE_FOLDERS[1:]:
        text = (REPOSITORY / module / "CMakeLists.txt").read_text()
        assert "WITH_GENERIC_TESTS" in text
        assert f"set(MODULE_NAME {module})" in text
        testing = (REPOSITORY / module / "Testing" / "Python" / "CMakeLists.txt").read_text()
        assert "slicer_add_python_unittest(SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/../../${MODULE_NAME}.py)" in testing


@pytest.fixture
def copy(tmp_path):
    target = tmp_path / "extension"
    shutil.copytree(
        REPOSITORY, target, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__", "build")
    )
    return target


def test_check_catches_a_missing_named_file(copy):
    (copy / "DLPVC" / "DLPVCLib" / "logic.py").unlink()
    assert "DLPVC/CMakeLists.txt: set names missing file ${MODULE_NAME}Lib/logic.py" in cmake_problems(copy)


def test_check_catches_an_unnamed_resource(copy):
    (copy / "DLPVC" / "Resources" / "UI" / "Extra.ui").write_text("<ui/>")
    assert "DLPVC/Resources/UI/Extra.ui is not named in DLPVC/CMakeLists.txt" in cmake_problems(copy)


def test_check_catches_a_misspelled_test_registration(copy):
    testing = copy / "DLPVC" / "Testing" / "Python" / "CMakeLists.txt"
    testing.write_text(testing.read_text().replace("${MODULE_NAME}.py", "DLPCV.py"))
    assert any("registers missing test script" in problem for problem in cmake_problems(copy))
