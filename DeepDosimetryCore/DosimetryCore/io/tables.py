"""The one CSV writer of DeepDosimetry tables, and the Markdown form of a table for people.

Units travel in the column names (``volume_ml``, ``mean_before_Bq_per_mL``, ``nrmse_percent``) or,
for tables whose columns share a unit given separately, in a ``unit`` row under the header.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from DosimetryCore.io.outputs import atomic_path


def write_csv(
    rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, units: Mapping[str, str] | None = None
) -> Path:
    """Write ``rows`` (dicts with the same keys, in column order) as CSV; returns the path.

    With ``units`` (column -> unit), a second row names each column's unit; its first cell is
    ``unit``. The folder is created when missing; the file is written under a temporary name and
    renamed (:func:`DosimetryCore.io.outputs.atomic_path`). Raises ValueError for no rows.
    """
    if not rows:
        raise ValueError(f"{path}: no rows to write")
    path = Path(path)
    fields = list(rows[0])
    with atomic_path(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=fields)
        writer.writeheader()
        if units is not None:
            writer.writerow({fields[0]: "unit", **{k: v for k, v in units.items() if k != fields[0]}})
        writer.writerows(rows)
    return path


def write_markdown(
    rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, columns: Sequence[str] | None = None
) -> Path:
    """Write ``rows`` as a Markdown table (``columns``, default the first row's keys; floats to 3 significant
    digits), atomically; returns the path. Raises ValueError for no rows."""
    if not rows:
        raise ValueError(f"{path}: no rows to write")
    columns = list(columns or rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k]) for k in columns) + " |"
        for row in rows
    ]
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
