"""Where DeepDosimetry looks for shipped resources (model weights, dose kernels) and keeps its cache.

Lookup order for the resources folder:

1. the ``DEEPDOSIMETRY_RESOURCES`` environment variable, when set;
2. ``Resources/`` at the top of a source checkout (editable install, CI);
3. ``Resources/`` beside the installed package (Slicer's scripted-module folder).

Nothing is ever downloaded: a resource that is not in these places does not exist. Shipped
resources are read, never written: what DeepDosimetry generates for reuse (kernels for a new voxel
size) goes to the per-user cache folder, :func:`cache_dir`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENVIRONMENT_VARIABLE = "DEEPDOSIMETRY_RESOURCES"
"""Environment variable naming the resources folder."""

CACHE_ENVIRONMENT_VARIABLE = "DEEPDOSIMETRY_CACHE"
"""Environment variable naming the cache folder."""

CACHE_FOLDER_NAME = "DeepDosimetry"
"""Name of the cache folder inside the platform's user cache folder."""

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
    """Folder holding the shipped (read-only) voxel S-value and electron point kernels with their provenance."""
    return resources_dir() / "Kernels"


def _user_cache_root() -> Path:
    """The platform's per-user cache folder: XDG (Linux), ~/Library/Caches (macOS), %LOCALAPPDATA% (Windows)."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def cache_dir() -> Path:
    """The per-user cache folder: ``DEEPDOSIMETRY_CACHE`` when set, else ``<user cache>/DeepDosimetry``.

    Never inside the installed package or the source checkout; created by whoever writes to it.
    """
    override = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    return Path(override) if override else _user_cache_root() / CACHE_FOLDER_NAME


def kernel_cache_dir() -> Path:
    """Folder of the kernels generated on this machine: ``Kernels`` in :func:`cache_dir`."""
    return cache_dir() / "Kernels"
