"""Node-level logic of the PlanarTo3D module: MRML nodes in, nodes out, inputs never changed.

No ``slicer`` import here: nodes are converted through :mod:`DosimetryCore.io.mrml`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from DosimetryCore import io
from DosimetryCore.core.progress import ProgressCallback, no_progress
from DosimetryCore.io import mrml

TABLE_UNITS = {"total_counts": "counts", "frame_duration_s": "s", "count_rate_cps": "counts/s"}


def split_paths(text: str) -> list[str]:
    """File paths from the panel's text field (separated by ';'), blanks dropped."""
    return [part.strip() for part in text.split(";") if part.strip()]


def counts_rows(pair: io.PlanarPair) -> list[dict[str, object]]:
    """One row per view: total counts, frame duration (s), count rate (counts/s), pixel size (mm)."""
    return [
        {
            "view": view.view,
            "total_counts": view.total_counts,
            "frame_duration_s": view.frame_duration_s,
            "count_rate_cps": view.count_rate_cps,
            "pixel_spacing_mm": " x ".join(f"{s:g}" for s in view.image.GetSpacing()),
            "source": view.source,
        }
        for view in (pair.anterior, pair.posterior)
    ]


def import_planar(
    scene,
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    anterior_node=None,
    posterior_node=None,
    table_node=None,
    progress: ProgressCallback | None = None,
):
    """Read an NM planar ANT/POST acquisition into volume nodes and a counts table.

    Each view becomes a one-slice coronal volume (counts), the posterior mirrored into the
    anterior orientation. Given nodes are filled, missing ones added to ``scene``. Returns
    ``(anterior_node, posterior_node, table_node)``. Nothing is written when reading fails.
    """
    progress = progress or no_progress
    progress(0.0, "Reading planar DICOM")
    pair = io.read_planar(paths)
    progress(0.6, "Writing nodes")
    nodes = []
    for view, node in ((pair.anterior, anterior_node), (pair.posterior, posterior_node)):
        volume = io.planar_volume(view.image)
        if node is None:
            node = mrml.add_volume_node(scene, volume, f"Planar {view.view}")
        else:
            mrml.update_volume_node_from_image(node, volume)
        nodes.append(node)
    rows = counts_rows(pair)
    if table_node is None:
        table_node = mrml.add_table_node(scene, rows, "Planar counts", units=TABLE_UNITS)
    else:
        mrml.update_table_node(table_node, rows, units=TABLE_UNITS)
    progress(1.0, "Done")
    return nodes[0], nodes[1], table_node
