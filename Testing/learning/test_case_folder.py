"""DosimetryCore.learning.case_folder: seeds, splits, the manifest guard and atomic case folders."""

from __future__ import annotations

import json

import pytest

from DosimetryCore.learning import case_folder


def _writer(folder, case_seed, text, progress=None):
    (folder / "value.txt").write_text(f"{text} {case_seed}")
    return {"seed": case_seed}


def _failing(folder, case_seed, progress=None):
    (folder / "value.txt").write_text("half")
    raise RuntimeError("simulation failed")


def test_seeds_and_splits_depend_on_the_seed_and_salt_alone():
    assert case_folder.case_seeds(3, 4) == case_folder.case_seeds(3, 10)[:4]
    seeds = case_folder.case_seeds(0, 2000)
    splits = [case_folder.split_of(s, (0.8, 0.1, 0.1), "a") for s in seeds]
    assert 0.75 < splits.count("train") / 2000 < 0.85
    assert splits != [case_folder.split_of(s, (0.8, 0.1, 0.1), "b") for s in seeds]
    assert {case_folder.split_of(s, (0, 0, 1), "a") for s in seeds[:50]} == {"test"}
    with pytest.raises(ValueError, match="summing to 1"):
        case_folder.check_fractions((0.5, 0.6, 0.0))


def test_cases_are_written_whole_and_a_failed_one_leaves_no_case_folder(tmp_path):
    manifest = {"format": 1, "n": 2, "cases": case_folder.manifest_cases(1, 2, (1, 0, 0), "x")}
    case_folder.prepare_folder(tmp_path, manifest, lambda folder: json.loads((folder / "manifest.json").read_text()))
    times = case_folder.write_cases(tmp_path, manifest["cases"], _writer, ("v",), "case.json")
    assert set(times) == {"case_00000", "case_00001"}
    seed = manifest["cases"][0]["seed"]
    assert case_folder.record_matches(tmp_path / "case_00000", "case.json", seed, ["value.txt"])
    assert not case_folder.record_matches(tmp_path / "case_00000", "case.json", seed + 1, ["value.txt"])
    with pytest.raises(RuntimeError, match="simulation failed"):
        case_folder.write_cases(tmp_path, [{"id": "case_00002", "seed": 5}], _failing, (), "case.json")
    assert not (tmp_path / "case_00002").exists()
    other = {**manifest, "format": 2}
    with pytest.raises(ValueError, match="holds another dataset"):
        case_folder.prepare_folder(tmp_path, other, lambda folder: json.loads((folder / "manifest.json").read_text()))
    case_folder.prepare_folder(tmp_path, manifest, lambda folder: json.loads((folder / "manifest.json").read_text()))
    assert not list(tmp_path.glob(".case_*.partial"))  # the failed case's partial folder is cleaned up
