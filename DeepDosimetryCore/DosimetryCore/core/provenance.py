"""The one provenance record format: how an output was made, in its metadata and beside its tables.

A record is a JSON object. :func:`record` makes one with the fields every record shares
(``generator``, the DeepDosimetry version, the command line, package versions, a UTC timestamp)
plus the caller's (inputs with their sha256, seeds, model name and hash, parameters).
:func:`stamp` writes a record into an image under :data:`~DosimetryCore.core.metadata.PROVENANCE_KEY`
and :func:`read` reads it back. Records of deterministic generators (phantoms, simulated cases)
are stamped without the timestamp and command line, so that the same seed gives the same file.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from DosimetryCore import __version__
from DosimetryCore.core.metadata import PROVENANCE_KEY

_VERSIONED_PACKAGES = ("numpy", "SimpleITK", "torch", "monai")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_entry(path: str | os.PathLike) -> dict[str, str]:
    """``{"path": ..., "sha256": ...}`` of an input file, as records list their inputs."""
    return {"path": str(path), "sha256": file_sha256(path)}


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def record(
    generator: str, *, inputs: Mapping[str, str | os.PathLike] | None = None, **fields: Any
) -> dict[str, Any]:
    """A provenance record of ``generator`` with the shared fields and ``fields``.

    ``inputs`` maps a role (e.g. ``"truth"``) to a file path; each is listed with its sha256.
    """
    shared = {
        "generator": generator,
        "deepdosimetry": __version__,
        "command": shlex.join(sys.argv),
        "versions": {"python": platform.python_version()} | {name: _version(name) for name in _VERSIONED_PACKAGES},
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if inputs:
        shared["inputs"] = {role: input_entry(path) for role, path in inputs.items()}
    return shared | fields


def stamp(image: sitk.Image, provenance: Mapping[str, Any]) -> sitk.Image:
    """Write ``provenance`` (JSON, sorted keys) into ``image``'s metadata; returns ``image``."""
    image.SetMetaData(PROVENANCE_KEY, json.dumps(provenance, sort_keys=True))
    return image


def read(image: sitk.Image) -> dict[str, Any] | None:
    """The provenance record of ``image``, or None when it has none."""
    return json.loads(image.GetMetaData(PROVENANCE_KEY)) if image.HasMetaDataKey(PROVENANCE_KEY) else None


def add_warnings(image: sitk.Image, notes: Sequence[str]) -> list[str]:
    """Append ``notes`` to the ``warnings`` of ``image``'s provenance (created when missing); returns all of
    them."""
    recorded = read(image) or {}
    warnings = [*recorded.get("warnings", []), *notes]
    if notes:
        stamp(image, recorded | {"warnings": warnings})
    return warnings


def stamp_command(
    image: sitk.Image, generator: str, inputs: Mapping[str, str | os.PathLike | None]
) -> sitk.Image:
    """Add the shared fields of :func:`record` (for command ``generator`` and its input files) to the
    record ``image`` already carries (whose own fields win); returns ``image``."""
    files = {role: path for role, path in inputs.items() if path}
    return stamp(image, record(generator, inputs=files) | (read(image) or {}))
