"""DosimetryCore.io.outputs: outputs never overwrite inputs and never land half-written."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from DosimetryCore import io
from DosimetryCore.io.outputs import atomic_path, check_outputs


def test_an_output_equal_to_an_input_is_refused(tmp_path):
    source = tmp_path / "spect.nrrd"
    source.write_bytes(b"input")
    with pytest.raises(ValueError, match="--output: .* is the --input file"):
        check_outputs({"--input": source}, {"--output": source})
    link = tmp_path / "link.nrrd"
    link.symlink_to(source)
    with pytest.raises(ValueError, match="is the --input file"):
        check_outputs({"--input": source}, {"--output": tmp_path / "sub" / ".." / "link.nrrd"})
    with pytest.raises(ValueError, match="also given as --output"):
        check_outputs({}, {"--output": tmp_path / "a.nrrd", "--table": tmp_path / "a.nrrd"})
    with pytest.raises(ValueError, match="is a folder"):
        check_outputs({}, {"--output": tmp_path})
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_outputs({}, {}, {"--out": source})
    with pytest.raises(ValueError, match="lies inside .*spect.nrrd, which is a file"):
        check_outputs({}, {"--table": source / "table.csv"})
    with pytest.raises(ValueError, match="lies inside"):
        check_outputs({}, {}, {"--out": source / "cases"})
    check_outputs({"--input": source, "--seg": None}, {"--output": tmp_path / "out.nrrd", "--table": None})
    assert source.read_bytes() == b"input"


def test_a_failed_write_leaves_neither_a_partial_file_nor_a_changed_target(tmp_path):
    target = tmp_path / "result.nii.gz"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".nii.gz")
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["result.nii.gz"]


def test_write_image_goes_through_a_temporary_name(tmp_path):
    image = sitk.GetImageFromArray(np.ones((3, 4, 5), np.float32))
    path = io.write_image(image, tmp_path / "new" / "volume.nrrd")
    assert sorted(p.name for p in path.parent.iterdir()) == ["volume.nrrd"]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(io.read_image(path)), 1.0)


def test_a_table_that_fails_half_way_leaves_no_file(tmp_path):
    from DosimetryCore.io.tables import write_csv

    rows = [{"segment": "liver", "mean": 1.0}, {"segment": "spleen", "unknown": 2.0}]
    with pytest.raises(ValueError):
        write_csv(rows, tmp_path / "table.csv")
    assert list(tmp_path.iterdir()) == []


def test_a_markdown_table_keeps_the_chosen_columns_and_three_digits(tmp_path):
    from DosimetryCore.io.tables import write_markdown

    rows = [{"region": "liver", "mean": 1.23456, "n": 3}, {"region": "spleen", "mean": 20.0, "n": 4}]
    path = write_markdown(rows, tmp_path / "t.md", ["region", "mean"])
    assert path.read_text().splitlines() == ["| region | mean |", "|---|---|", "| liver | 1.23 |", "| spleen | 20 |"]
    with pytest.raises(ValueError, match="no rows"):
        write_markdown([], tmp_path / "empty.md")
