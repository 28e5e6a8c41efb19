"""File cache for generated kernels: arrays in a compressed .npz beside a JSON provenance record.

An entry is found by the parameters that generated it: their canonical JSON is hashed into the file name,
and the stored parameters are compared again on reading, so a changed engine version or seed never reuses a
stale file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..core.resources import kernels_dir


def entry_stem(prefix: str, parameters: dict[str, Any]) -> str:
    """File stem ``<prefix>_<12 hex digits of the parameters' hash>``."""
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:12]
    return f"{prefix}_{digest}"


def load(
    stem: str, parameters: dict[str, Any], folder: Path | None = None
) -> tuple[dict[str, np.ndarray], dict] | None:
    """(arrays, provenance) of the entry ``stem`` if it exists and was made with ``parameters``, else None."""
    folder = kernels_dir() if folder is None else Path(folder)
    arrays_path, record_path = folder / f"{stem}.npz", folder / f"{stem}.json"
    if not (arrays_path.is_file() and record_path.is_file()):
        return None
    record = json.loads(record_path.read_text())
    if record.get("parameters") != json.loads(json.dumps(parameters)):
        return None
    with np.load(arrays_path) as stored:
        return {name: stored[name] for name in stored.files}, record


def save(stem: str, arrays: dict[str, np.ndarray], record: dict, folder: Path | None = None) -> Path | None:
    """Write an entry (compressed float32 arrays + JSON record); return the .npz path, or None if not writable."""
    folder = kernels_dir() if folder is None else Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.npz"
        np.savez_compressed(path, **{name: np.asarray(a, dtype=np.float32) for name, a in arrays.items()})
        (folder / f"{stem}.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    except OSError:
        return None
    return path
