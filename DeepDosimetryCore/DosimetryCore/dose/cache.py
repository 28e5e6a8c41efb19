"""File cache for generated kernels: arrays in a compressed .npz beside a JSON provenance record.

An entry is found by the parameters that generated it: their canonical JSON is hashed into the file name,
and the stored parameters are compared again on reading, so a changed engine version or seed never reuses a
stale file. Entries are looked up among the shipped kernels (``Resources/Kernels``, read-only) and then in
the per-user kernel cache (:func:`DosimetryCore.core.resources.kernel_cache_dir`); new entries are written
only to the per-user cache, never into the installed or checked-out tree.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..core.resources import CACHE_ENVIRONMENT_VARIABLE, kernel_cache_dir, kernels_dir
from ..io.outputs import atomic_path


def entry_stem(prefix: str, parameters: dict[str, Any]) -> str:
    """File stem ``<prefix>_<12 hex digits of the parameters' hash>``."""
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:12]
    return f"{prefix}_{digest}"


def _lookup_folders() -> list[Path]:
    """Shipped kernels first (when a resources folder exists), then the per-user cache."""
    try:
        shipped = [kernels_dir()]
    except ValueError:
        shipped = []
    return [*shipped, kernel_cache_dir()]


def load(
    stem: str, parameters: dict[str, Any], folder: Path | None = None
) -> tuple[dict[str, np.ndarray], dict] | None:
    """(arrays, provenance) of the entry ``stem`` if it exists and was made with ``parameters``, else None.

    ``folder`` None: the shipped kernels, then the per-user cache.
    """
    for candidate in _lookup_folders() if folder is None else [Path(folder)]:
        arrays_path, record_path = candidate / f"{stem}.npz", candidate / f"{stem}.json"
        if not (arrays_path.is_file() and record_path.is_file()):
            continue
        try:
            record = json.loads(record_path.read_text())
            if record.get("parameters") != json.loads(json.dumps(parameters)):
                continue
            with np.load(arrays_path) as stored:
                return {name: stored[name] for name in stored.files}, record
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"kernel cache: {arrays_path} or its record is damaged ({error}); delete both files and the kernel "
                "is generated again"
            ) from error
    return None


def save(stem: str, arrays: dict[str, np.ndarray], record: dict, folder: Path | None = None) -> Path | None:
    """Write an entry (compressed float32 arrays + JSON record); return the .npz path, or None if not writable.

    ``folder`` None: the per-user kernel cache. Files are written under temporary names and renamed,
    so a reader never sees half an entry. A folder that cannot be written is reported with a warning
    naming it (the kernel is still returned to the caller, just not kept).
    """
    folder = kernel_cache_dir() if folder is None else Path(folder)
    path = folder / f"{stem}.npz"
    try:
        with atomic_path(path) as partial_arrays, atomic_path(folder / f"{stem}.json") as partial_record:
            np.savez_compressed(partial_arrays, **{name: np.asarray(a, dtype=np.float32) for name, a in arrays.items()})
            partial_record.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    except OSError as error:
        warnings.warn(
            f"kernel cache: cannot write {folder} ({error}); the kernel is not kept. "
            f"Set {CACHE_ENVIRONMENT_VARIABLE} to a writable folder.",
            stacklevel=2,
        )
        return None
    return path
