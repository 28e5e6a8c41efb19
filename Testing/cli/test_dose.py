"""Tests of the `deepdosimetry kernel` and `deepdosimetry dose-rate` sub-commands."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from DosimetryCore import io
from DosimetryCore.cli import main as cli
from DosimetryCore.core.metadata import PROVENANCE_KEY
from DosimetryCore.core.resources import ENVIRONMENT_VARIABLE, kernel_cache_dir, kernels_dir
from DosimetryCore.core.volume import image_from_array, unit_of
from DosimetryCore.dose.kernels import KERNEL_UNIT


@pytest.fixture
def private_resources(tmp_path, monkeypatch):
    """A resources folder of the test's own (so generated kernels do not land in Resources/Kernels), holding
    a copy of the shipped electron point kernel."""
    folder = tmp_path / "Resources" / "Kernels"
    folder.mkdir(parents=True)
    for path in kernels_dir().glob("*electron_point_kernel*"):
        shutil.copy(path, folder)
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(folder.parent))
    return folder


@pytest.fixture
def case(tmp_path):
    """Activity (Bq/mL), CT (HU: a water body in air) and a labelmap with segment names, as NRRD files on a 16^3
    grid of 4.8 mm."""
    hu = np.full((16, 16, 16), -1000, dtype=np.int16)
    hu[1:15, 1:15, 1:15] = 0
    activity = np.where(hu == 0, 1.0e4, 0.0).astype(np.float32)
    activity[4:10, 4:10, 4:10] = 1.0e5
    labels = np.zeros(activity.shape, dtype=np.uint8)
    labels[4:10, 4:10, 4:10] = 1
    labels[12:15, 12:15, 12:15] = 2
    geometry = {"spacing": (4.8, 4.8, 4.8), "origin": (10.0, -20.0, 5.0)}
    label_image = image_from_array(labels, **geometry)
    label_image.SetMetaData("deepdosimetry.label_names", json.dumps({"1": "lesion", "2": "kidney"}))
    paths = {name: tmp_path / f"{name}.nrrd" for name in ("activity", "ct", "seg")}
    io.write_image(image_from_array(activity, unit="Bq/mL", **geometry), paths["activity"])
    io.write_image(image_from_array(hu, unit="HU", **geometry), paths["ct"])
    io.write_image(label_image, paths["seg"])
    return paths


def test_kernel_command_writes_the_total_kernel(private_resources, tmp_path, capsys):
    output = tmp_path / "K.nrrd"
    status = cli.main(
        [
            "kernel",
            "--voxel-mm",
            "4",
            "4",
            "3",
            "--output",
            str(output),
            "--beta-size",
            "5",
            "--photon-size",
            "9",
            "--histories",
            "5000",
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    image = io.read_image(output)
    assert image.GetSize() == (9, 9, 9) and image.GetSpacing() == pytest.approx((4.0, 4.0, 3.0))
    assert unit_of(image) == KERNEL_UNIT
    provenance = json.loads(image.GetMetaData(PROVENANCE_KEY))
    assert provenance["parameters"]["spacing_mm"] == [3.0, 4.0, 4.0]  # (z, y, x)
    assert provenance["parameters"]["photon_histories"] == 5000
    values = sitk.GetArrayFromImage(image)
    assert values[4, 4, 4] == values.max() > 0
    assert len(list(kernel_cache_dir().glob("Lu-177_kernel_4x4x3mm_*.npz"))) == 1  # cached, in the user cache
    assert not list(private_resources.glob("Lu-177_kernel_4x4x3mm_*"))  # never in Resources/Kernels
    assert "mGy/(MBq*s)" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["vdk", "led", "mc"])
def test_dose_rate_command_writes_image_and_table(case, tmp_path, method):
    output, table, uncertainty = tmp_path / "D.nrrd", tmp_path / "T.csv", tmp_path / "U.nrrd"
    arguments = [
        "dose-rate",
        "--activity",
        str(case["activity"]),
        "--ct",
        str(case["ct"]),
        "--method",
        method,
        "--output",
        str(output),
        "--seg",
        str(case["seg"]),
        "--table",
        str(table),
        "--device",
        "cpu",
    ]
    if method == "mc":
        arguments += ["--uncertainty", str(uncertainty), "--histories", "2000", "--batches", "4"]
    assert cli.main(arguments) == 0
    image = io.read_image(output)
    assert unit_of(image) == "Gy/h" and image.GetOrigin() == pytest.approx((10.0, -20.0, 5.0))
    provenance = json.loads(image.GetMetaData(PROVENANCE_KEY))
    assert provenance["method"] == method
    if method == "mc":
        assert provenance["seed"] == 177 and provenance["photon_histories"] == 2000
        assert uncertainty.is_file()
    if method == "vdk":
        assert provenance["kernel"]["parameters"]["spacing_mm"] == [4.8, 4.8, 4.8]
    with table.open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["segment"] for row in rows] == ["lesion", "kidney"]
    assert float(rows[0]["mean_Gy_per_h"]) > float(rows[1]["mean_Gy_per_h"]) > 0


def test_dose_rate_command_refuses_bad_input_and_writes_nothing(case, tmp_path, capsys):
    output = tmp_path / "D.nrrd"
    base = ["dose-rate", "--activity", str(case["activity"]), "--output", str(output), "--method", "led"]
    assert cli.main([*base, "--ct", str(case["ct"]), "--table", str(tmp_path / "T.csv")]) == 2
    assert "--seg" in capsys.readouterr().err
    half = sitk.RegionOfInterest(io.read_image(case["ct"]), (16, 16, 8), (0, 0, 0))
    io.write_image(half, tmp_path / "ct_half.nrrd")
    assert cli.main([*base, "--ct", str(tmp_path / "ct_half.nrrd")]) == 2
    assert "does not cover the activity" in capsys.readouterr().err
    density = sitk.Cast(io.read_image(case["ct"]), sitk.sitkFloat32) * 0.0009988 + 1.0  # air 0.0012, water 1
    io.write_image(density, tmp_path / "ct_density.nrrd")
    assert cli.main([*base, "--ct", str(tmp_path / "ct_density.nrrd")]) == 2
    assert f"--ct {tmp_path / 'ct_density.nrrd'}: values" in capsys.readouterr().err
    assert not output.exists()


def test_dose_rate_command_resamples_a_ct_of_another_grid(case, tmp_path):
    ct = io.read_image(case["ct"])
    finer = sitk.Resample(ct, [32, 32, 32], sitk.Transform(), sitk.sitkNearestNeighbor, ct.GetOrigin(), (2.4,) * 3)
    finer.SetOrigin(tuple(o - 1.2 for o in ct.GetOrigin()))
    finer = sitk.Resample(ct, finer, sitk.Transform(), sitk.sitkNearestNeighbor, -1000.0)
    io.write_image(finer, tmp_path / "ct_fine.nrrd")
    output = tmp_path / "D.nrrd"
    arguments = ["dose-rate", "--activity", str(case["activity"]), "--ct", str(tmp_path / "ct_fine.nrrd")]
    assert cli.main([*arguments, "--method", "led", "--output", str(output)]) == 0
    dose = sitk.GetArrayFromImage(io.read_image(output))
    assert dose.shape == (16, 16, 16) and dose[6, 6, 6] > 0 and dose[0, 0, 0] == 0


def test_kernel_command_refuses_two_voxel_sizes(tmp_path, capsys):
    assert cli.main(["kernel", "--voxel-mm", "4", "4", "--output", str(tmp_path / "K.nrrd")]) == 2
    assert "--voxel-mm" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "vdk", "--uncertainty", "U.nrrd"], "--uncertainty: not used by --method vdk"),
        (["--method", "led", "--histories", "100"], "--histories: not used by --method led"),
        (["--method", "mc", "--density-scaling", "total"], "--density-scaling: not used by --method mc"),
        (["--method", "vdk", "--led-photons"], "--led-photons: not used by --method vdk"),
    ],
)
def test_dose_rate_command_refuses_options_the_method_ignores(case, tmp_path, capsys, extra, message):
    output = tmp_path / "D.nrrd"
    base = ["dose-rate", "--activity", str(case["activity"]), "--ct", str(case["ct"]), "--output", str(output)]
    assert cli.main([*base, *extra]) == 2
    assert message in capsys.readouterr().err and not output.exists()


def test_dose_rate_command_never_overwrites_its_inputs(case, capsys):
    before = case["activity"].read_bytes()
    arguments = ["dose-rate", "--activity", str(case["activity"]), "--ct", str(case["ct"]), "--method", "led"]
    assert cli.main([*arguments, "--output", str(case["activity"])]) == 2
    assert "--output" in capsys.readouterr().err and case["activity"].read_bytes() == before
    assert cli.main([*arguments, "--output", str(case["activity"].parent / "D.nrrd"), "--seg", str(case["seg"]),
                     "--table", str(case["seg"])]) == 2  # fmt: skip
    assert "--table" in capsys.readouterr().err and not (case["activity"].parent / "D.nrrd").exists()
