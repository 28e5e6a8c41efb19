"""Where DeepDosimetry looks for shipped resources: model weights and dose kernels.

Lookup order for the resources folder:

1. the ``DEEPDOSIMETRY_RESOURCES`` environment variable, when set;
2. ``Resources/`` at the top of a source checkout (editable install, CI);
3. ``Resources/`` beside the installed package (Slicer's scripted-module folder).

Nothing is ever downloaded: a resource that is not in these places does not exist.
"""

from __future__ import annotations

import os
from pathlib import Path

ENVIRONMENT_VARIABLE = "DEEPDOSIMETRY_RESOURCES"

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
"""The DosimetryCore package folder."""


def resources_dir() -> Path:
    """The resources folder in use (see the module docstring for the lookup order)."""
    override = os.environ.get(ENVIRONMENT_VARIABLE)
    if override:
        path = Path(override)
        if not path.is_dir():
            raise ValueError(f"{ENVIRONMENT_VARIABLE}: {path} is not a folder")
        return path
    for candidate in (_PACKAGE_DIR.parents[1] / "Resources", _PACKAGE_DIR.parent / "Resources"):
        if candidate.is_dir():
            return candidate
    raise ValueError(
        f"resources: no Resources folder found beside {_PACKAGE_DIR}; set {ENVIRONMENT_VARIABLE} to its location"
    )


def models_dir() -> Path:
    """Folder holding one sub-folder per shipped model (weights + model card)."""
    return resources_dir() / "Models"


def kernels_dir() -> Path:
    """Folder holding cached voxel S-value kernels with their provenance."""
    return resources_dir() / "Kernels"
