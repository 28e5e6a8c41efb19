"""The report: metrics per method, the comparison figure, the written files and the sub-command."""

from __future__ import annotations

import argparse
import csv
import json

import matplotlib.image
import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from DosimetryCore import io
from DosimetryCore.cli import report as report_cli
from DosimetryCore.core.metadata import LABEL_NAMES_KEY, PROVENANCE_KEY
from DosimetryCore.core.volume import set_unit
from DosimetryCore.evaluation import report
from DosimetryCore.io import mrml


def _image(array: np.ndarray, spacing: float = 4.0) -> sitk.Image:
    image = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
    image.SetSpacing((spacing, spacing, spacing))
    return set_unit(image, "Bq/mL", "activity concentration")


@pytest.fixture
def truth_and_labels() -> tuple[sitk.Image, sitk.Image]:
    """A 16^3 truth (Bq/mL) with a hot cube (label 1) and a warm slab (label 2)."""
    values = np.zeros((16, 16, 16))
    labels = np.zeros((16, 16, 16), np.uint8)
    values[4:8, 4:8, 4:8], labels[4:8, 4:8, 4:8] = 1000.0, 1
    values[10:14, 2:14, 2:14], labels[10:14, 2:14, 2:14] = 200.0, 2
    values[5, 5, 5] = 1500.0
    labelmap = sitk.GetImageFromArray(labels)
    labelmap.SetSpacing((4.0, 4.0, 4.0))
    return _image(values), labelmap


def _scaled(image: sitk.Image, factor: float) -> sitk.Image:
    scaled = _image(sitk.GetArrayFromImage(image) * factor)
    scaled.CopyInformation(image)
    return scaled


def test_identical_estimate_is_perfect_and_scaled_estimate_has_its_ad(truth_and_labels):
    truth, _ = truth_and_labels
    rows = report.method_metrics(truth, {"same": truth, "plus 10%": _scaled(truth, 1.1)})
    assert [row["method"] for row in rows] == ["same", "plus 10%"]
    same, scaled = rows
    assert same["ssim"] == pytest.approx(1.0)
    assert same["nrmse_percent"] == 0.0 and same["vaa_percent"] == 100.0 and same["ad_percent"] == 0.0
    assert scaled["ad_percent"] == pytest.approx(10.0, rel=1e-5)
    assert scaled["vaa_percent"] == 0.0  # every voxel is off by 10 % >= alpha = 5 %
    # NRMSE normalised by the truth's range inside truth > 0 (200 ... 1500 Bq/mL).
    inside = sitk.GetArrayFromImage(truth)[sitk.GetArrayFromImage(truth) > 0]
    expected = np.sqrt(np.mean((0.1 * inside) ** 2)) / (1500.0 - 200.0)
    assert scaled["nrmse_percent"] == pytest.approx(100 * expected, rel=1e-5)
    assert scaled["ssim"] < 1.0
    assert set(report.metric_units(rows)) == {"ssim", "nrmse_percent", "vaa_percent", "ad_percent"}


def test_recovery_coefficient_columns_per_named_segment(truth_and_labels):
    truth, labelmap = truth_and_labels
    estimate = sitk.GetArrayFromImage(truth).copy()
    estimate[4:8, 4:8, 4:8] *= 0.5
    rows = report.method_metrics(truth, {"half cube": _image(estimate)}, labelmap, {1: "cube", 2: "slab", 7: "absent"})
    assert list(rows[0]) == ["method", "ssim", "nrmse_percent", "vaa_percent", "ad_percent", "RC cube", "RC slab"]
    assert rows[0]["RC cube"] == pytest.approx(0.5) and rows[0]["RC slab"] == pytest.approx(1.0)
    unnamed = report.method_metrics(truth, {"same": truth}, labelmap)
    assert unnamed[0]["RC label 1"] == pytest.approx(1.0) and unnamed[0]["RC label 2"] == pytest.approx(1.0)


def test_bad_inputs_raise_naming_the_method(truth_and_labels):
    truth, labelmap = truth_and_labels
    shifted = _scaled(truth, 1.0)
    shifted.SetOrigin((1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="method 'moved'.*geometry differs"):
        report.method_metrics(truth, {"ok": truth, "moved": shifted})
    other_unit = set_unit(_scaled(truth, 1.0), "Gy/h")
    with pytest.raises(ValueError, match="method 'dose'.*unit is Gy/h"):
        report.method_metrics(truth, {"dose": other_unit})
    with pytest.raises(ValueError, match="at least one method"):
        report.method_metrics(truth, {})
    with pytest.raises(ValueError, match="no voxel > 0"):
        report.method_metrics(_scaled(truth, 0.0), {"a": truth})
    with pytest.raises(ValueError, match="none of the labels"):
        report.method_metrics(truth, {"a": truth}, labelmap, {9: "nothing"})


def test_figure_is_a_readable_png(truth_and_labels, tmp_path):
    truth, _ = truth_and_labels
    path = report.report_figure(truth, {"A": _scaled(truth, 0.8), "B": truth}, tmp_path / "fig" / "f.png")
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] >= 400 and pixels.shape[1] >= 600
    assert pixels[..., :3].std() > 0.05  # not blank
    with pytest.raises(ValueError, match="slice_index"):
        report.report_figure(truth, {"A": truth}, tmp_path / "g.png", slice_index=(0, 0, 99))
    assert not (tmp_path / "g.png").exists()


def test_write_report_writes_all_files_and_a_reloadable_scene(truth_and_labels, tmp_path):
    truth, labelmap = truth_and_labels
    truth.SetMetaData(PROVENANCE_KEY, json.dumps({"generator": "test", "seed": 3}))
    ct = sitk.Cast(labelmap, sitk.sitkInt16)
    paths = report.write_report(
        tmp_path / "out", truth, {"pvc": _scaled(truth, 0.9)}, labelmap, {1: "cube", 2: "slab"},
        extra_volumes={"ct": ct}, provenance={"case": 7},
    )
    assert {key: path.name for key, path in paths.items()} == {
        "csv": "metrics.csv", "png": "report.png", "mrb": "report.mrb", "json": "report.json"
    }
    with paths["csv"].open() as stream:
        lines = list(csv.reader(stream))
    assert lines[0] == ["method", "ssim", "nrmse_percent", "vaa_percent", "ad_percent", "RC cube", "RC slab"]
    assert lines[1] == ["unit", "1", "%", "%", "%", "1", "1"]
    assert lines[2][0] == "pvc" and float(lines[2][4]) == pytest.approx(-10.0, rel=1e-5)
    document = json.loads(paths["json"].read_text())
    assert document["provenance"] == {"case": 7} and document["value_unit"] == "Bq/mL"
    assert document["image_provenance"] == {"truth": {PROVENANCE_KEY: {"generator": "test", "seed": 3}}, "pvc": {}}
    assert document["metrics"][0]["RC cube"] == pytest.approx(0.9)
    assert matplotlib.image.imread(paths["png"]).shape[0] >= 400

    scene = mrml.load_scene_bundle(paths["mrb"])
    for name in ("truth", "pvc", "ct"):
        assert scene.GetFirstNodeByName(name) is not None, name
    np.testing.assert_allclose(
        slicer.util.arrayFromVolume(scene.GetFirstNodeByName("truth")), sitk.GetArrayFromImage(truth)
    )
    segmentation = scene.GetFirstNodeByName("segments").GetSegmentation()
    assert sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())) == [
        "cube", "slab"
    ]
    table = mrml.rows_from_table_node(scene.GetFirstNodeByName("metrics"))
    assert table[0]["method"] == "pvc" and table[0]["ad_percent"] == pytest.approx(-10.0, rel=1e-5)


def test_write_report_writes_nothing_on_bad_input(truth_and_labels, tmp_path):
    truth, _ = truth_and_labels
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="provenance"):
        report.write_report(out, truth, {"a": truth}, provenance={"bad": object()})
    with pytest.raises(ValueError, match="extra volume 'a'"):
        report.write_report(out, truth, {"a": truth}, extra_volumes={"a": truth})
    assert not out.exists()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepdosimetry")
    report_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_command_runs_end_to_end(truth_and_labels, tmp_path, capsys):
    truth, labelmap = truth_and_labels
    labelmap.SetMetaData(LABEL_NAMES_KEY, json.dumps({"1": "cube", "2": "slab"}))
    io.write_image(truth, tmp_path / "truth.nrrd")
    io.write_image(_scaled(truth, 1.2), tmp_path / "osem.nrrd")
    io.write_image(labelmap, tmp_path / "labels.nrrd")
    arguments = _parser().parse_args([
        "report", "--truth", str(tmp_path / "truth.nrrd"), "--method", f"osem={tmp_path / 'osem.nrrd'}",
        "--method", f"ideal={tmp_path / 'truth.nrrd'}", "--labels", str(tmp_path / "labels.nrrd"),
        "--out", str(tmp_path / "out"),
    ])
    assert arguments.handler(arguments) == 0
    assert "report.mrb" in capsys.readouterr().out
    document = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [row["method"] for row in document["metrics"]] == ["osem", "ideal"]
    assert document["metrics"][0]["RC slab"] == pytest.approx(1.2, rel=1e-5)
    methods = {"osem": str(tmp_path / "osem.nrrd"), "ideal": str(tmp_path / "truth.nrrd")}
    assert document["provenance"]["methods"] == methods


@pytest.mark.parametrize(
    "spec, message",
    [
        ("osem", "NAME=PATH"),
        ("=x.nrrd", "NAME=PATH"),
        ("a=missing.nrrd", "does not exist"),
        ("truth=TRUTH", "reserved"),
    ],
)
def test_command_rejects_bad_method_without_writing(truth_and_labels, tmp_path, spec, message):
    truth, _ = truth_and_labels
    io.write_image(truth, tmp_path / "truth.nrrd")
    spec = spec.replace("TRUTH", str(tmp_path / "truth.nrrd"))
    arguments = _parser().parse_args(
        ["report", "--truth", str(tmp_path / "truth.nrrd"), "--method", spec, "--out", str(tmp_path / "out")]
    )
    with pytest.raises(ValueError, match=message):
        arguments.handler(arguments)
    assert not (tmp_path / "out").exists()
