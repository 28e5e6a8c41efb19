"""DosimetryCore.core.resources: where models and kernels are looked up."""

from __future__ import annotations

from pathlib import Path

import pytest

from DosimetryCore.core import resources

REPOSITORY = Path(__file__).resolve().parents[2]


def test_source_checkout_resources_are_found(monkeypatch):
    monkeypatch.delenv(resources.ENVIRONMENT_VARIABLE, raising=False)
    assert resources.resources_dir() == REPOSITORY / "Resources"
    assert resources.models_dir() == REPOSITORY / "Resources" / "Models"
    assert resources.kernels_dir() == REPOSITORY / "Resources" / "Kernels"


def test_environment_variable_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv(resources.ENVIRONMENT_VARIABLE, str(tmp_path))
    assert resources.models_dir() == tmp_path / "Models"
    monkeypatch.setenv(resources.ENVIRONMENT_VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="DEEPDOSIMETRY_RESOURCES"):
        resources.resources_dir()
