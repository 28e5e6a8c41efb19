"""Output files that never destroy inputs and never land half-written.

- :func:`check_outputs` is called by every command before any work: it refuses an output path that is (or
  resolves to, through links or ``..``) one of the inputs, two outputs with the same path, an output that is
  an existing folder, and an output folder that is an existing file.
- :func:`atomic_path` gives a temporary name in the target folder for a writer and renames it onto the target
  when the writer succeeded (``os.replace``: atomic on one file system); on failure the temporary file is
  removed and the target is left as it was. :func:`DosimetryCore.io.write_image` and the table writer use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

PathLike = str | os.PathLike


def _resolved(path: PathLike) -> Path:
    return Path(path).expanduser().resolve()


def check_outputs(
    inputs: Mapping[str, PathLike | None],
    outputs: Mapping[str, PathLike | None],
    folders: Mapping[str, PathLike | None] | None = None,
) -> None:
    """Refuse outputs that would overwrite an input or each other, before anything is computed.

    Args:
        inputs: option name (e.g. ``"--input"``) -> input file path (None: not given).
        outputs: option name -> output file path (None: not given).
        folders: option name -> output folder (None: not given); it must not be an existing file.
    Raises:
        ValueError naming the options involved.
    """
    given_inputs = {name: _resolved(path) for name, path in inputs.items() if path is not None}
    seen: dict[Path, str] = {}
    for name, path in outputs.items():
        if path is None:
            continue
        target = _resolved(path)
        for input_name, source in given_inputs.items():
            if target == source:
                raise ValueError(f"{name}: {path} is the {input_name} file; choose another output so the input is kept")
        if target in seen:
            raise ValueError(f"{name}: {path} is also given as {seen[target]}; each output needs its own file")
        if target.is_dir():
            raise ValueError(f"{name}: {path} is a folder; give a file name")
        _check_parents(name, path, target)
        seen[target] = name
    for name, path in (folders or {}).items():
        if path is None:
            continue
        folder = _resolved(path)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{name}: {path} is a file, not a folder")
        _check_parents(name, path, folder)
        for input_name, source in given_inputs.items():
            if folder == source:
                raise ValueError(f"{name}: {path} is the {input_name} file")


def _check_parents(name: str, path: PathLike, target: Path) -> None:
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{name}: {path} lies inside {parent}, which is a file, not a folder")
            return


def format_suffix(path: Path) -> str:
    """The suffix that names a file's format: ``.nii.gz`` for gzipped NIfTI, else the last suffix (as spelled)."""
    return path.name[-len(".nii.gz") :] if path.name.lower().endswith(".nii.gz") else path.suffix


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (same format suffix) to write to; renamed onto ``path`` when the block
    ends without an exception, deleted otherwise. Parent folders are created."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = format_suffix(target)
    stem = target.name[: len(target.name) - len(suffix)] if suffix else target.name
    temporary = target.with_name(f".{stem}.partial-{os.getpid()}{suffix}")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
