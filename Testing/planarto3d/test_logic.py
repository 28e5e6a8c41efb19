"""PlanarTo3DLib.logic on real MRML: importing a planar ANT/POST acquisition into nodes."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from DosimetryCore import io
from DosimetryCore.io import mrml
from PlanarTo3DLib import logic


@pytest.fixture
def planar_file(tmp_path, rng):
    anterior, posterior = rng.poisson(30.0, (48, 20)), rng.poisson(20.0, (48, 20))
    path = io.write_planar_dicom(anterior, posterior, tmp_path / "wb.dcm", (4.8, 4.4), 600.0)
    return path, anterior, posterior


def test_import_creates_views_and_counts_table(scene, planar_file):
    path, anterior, posterior = planar_file
    anterior_node, posterior_node, table = logic.import_planar(scene, [str(path)])
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(anterior_node)[0], anterior)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(posterior_node)[0], posterior)
    assert anterior_node.GetAttribute("DeepDosimetry.Frame_duration_s") == "600"
    rows = mrml.rows_from_table_node(table)
    assert [row["view"] for row in rows] == ["anterior", "posterior"]
    assert rows[0]["total_counts"] == anterior.sum()
    assert rows[1]["count_rate_cps"] == pytest.approx(posterior.sum() / 600.0)
    assert rows[0]["pixel_spacing_mm"] == "4.4 x 4.8"


def test_import_fills_chosen_nodes(scene, planar_file):
    path, anterior, _ = planar_file
    chosen = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "ANT")
    anterior_node, _, _ = logic.import_planar(scene, path, anterior_node=chosen)
    assert anterior_node is chosen
    assert slicer.util.arrayFromVolume(chosen).sum() == anterior.sum()


def test_failed_import_writes_nothing(scene, tmp_path):
    (tmp_path / "bad.dcm").write_bytes(b"junk")
    before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="not a readable DICOM"):
        logic.import_planar(scene, [str(tmp_path / "bad.dcm")])
    assert scene.GetNumberOfNodes() == before


def test_split_paths():
    assert logic.split_paths(" a.dcm ; b.dcm;; ") == ["a.dcm", "b.dcm"]
    assert logic.split_paths("") == []
