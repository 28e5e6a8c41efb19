"""DosimetryCore.cli.main: the deepdosimetry command, its core sub-commands and entry-point discovery."""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from DosimetryCore import io
from DosimetryCore.cli import main as cli


def test_info_prints_versions_device_and_lookup_folders(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "DeepDosimetry 0.1.0" in out
    assert "torch " in out and "SimpleITK " in out and "slicer-core " in out
    assert "default device: " in out
    assert "models looked up in: " in out and "Resources/Models" in out
    assert "kernels looked up in: " in out and "Resources/Kernels" in out
    assert "commands: " in out and "import-planar" in out


def test_console_script_is_installed():
    script = shutil.which("deepdosimetry") or str(Path(sys.executable).parent / "deepdosimetry")
    result = subprocess.run([script, "info"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "DeepDosimetry" in result.stdout


def test_import_planar_writes_both_views(tmp_path, rng, capsys):
    anterior, posterior = rng.poisson(10.0, (32, 16)), rng.poisson(8.0, (32, 16))
    dicom = io.write_planar_dicom(anterior, posterior, tmp_path / "wb.dcm", (4.8, 4.8), 600.0)
    assert cli.main(["import-planar", str(dicom), "--out", str(tmp_path / "out")]) == 0
    written = io.read_image(tmp_path / "out" / "posterior.nrrd")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), posterior)
    assert written.GetMetaData("deepdosimetry.frame_duration_s") == "600"
    assert "anterior:" in capsys.readouterr().out


def test_bad_input_exits_2_with_the_reason(tmp_path, capsys):
    assert cli.main(["import-planar", str(tmp_path / "missing.dcm"), "--out", str(tmp_path)]) == 2
    assert "not a readable DICOM" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit):
        cli.main([])


def test_method_commands_are_discovered_through_entry_points(monkeypatch):
    calls = []

    def register(subparsers: argparse._SubParsersAction) -> None:
        calls.append("registered")
        subparsers.add_parser("example-method").set_defaults(handler=lambda arguments: 0)

    class Point:
        name = "example-method"

        def load(self):
            return register

    def entry_points(group):
        return [Point()] if group in (cli.ENTRY_POINT_GROUP, cli.TRAINING_ENTRY_POINT_GROUP) else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert cli.main(["example-method"]) == 0
    assert cli.main(["train", "example-method"]) == 0
    assert calls == ["registered", "registered", "registered", "registered"]


def test_without_training_registrations_there_is_no_train_command(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [])
    assert "train" not in cli.build_parser().parse_args(["info"]).command_names


def test_clashing_registrations_are_reported(monkeypatch):
    class Point:
        name = "clash"

        def load(self):
            return lambda subparsers: subparsers.add_parser("info")

    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [Point()] if group == cli.ENTRY_POINT_GROUP else []
    )
    with pytest.raises(RuntimeError, match="clashing command"):
        cli.build_parser()
