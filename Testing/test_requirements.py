"""Dependencies are declared once for pip (pyproject.toml) and once per module for Slicer
(``<Module>/Resources/requirements.txt``, installed on Apply); the two must agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

REPOSITORY = Path(__file__).resolve().parents[1]
MODULES = ("PlanarTo3D", "DLPVC", "DoseRateCNN")
NOT_INSTALLED_BY_THE_MODULES = {
    "slicer-core": "Slicer's own MRML libraries: the application has them",
    "matplotlib": "report figures, made by the command line only",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].strip().lower()


def pip_requirements() -> dict[str, str]:
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    return {_name(requirement): requirement for requirement in project["dependencies"]}


def slicer_requirements(module: str) -> list[str]:
    lines = (REPOSITORY / module / "Resources" / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("module", MODULES)
def test_each_slicer_requirement_is_the_pip_one(module):
    pip = pip_requirements()
    for requirement in slicer_requirements(module):
        assert pip.get(_name(requirement)) == requirement, f"{module}: {requirement} differs from pyproject.toml"


def test_every_pip_requirement_is_installed_by_some_module_or_says_why_not():
    installed = {_name(r) for module in MODULES for r in slicer_requirements(module)}
    assert set(pip_requirements()) - installed == set(NOT_INSTALLED_BY_THE_MODULES)


def test_panels_keep_no_package_lists():
    for module in MODULES:
        assert "REQUIRED_PACKAGES" not in (REPOSITORY / module / f"{module}.py").read_text()
