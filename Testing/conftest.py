"""Shared pytest fixtures: real MRML scenes (slicer-core) and standards-shaped DICOM files."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def scene():
    """A fresh MRML scene from the slicer-core package (real MRML, no Slicer application)."""
    from DosimetryCore.io import mrml

    return mrml.new_scene()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)
