"""DosimetryCore.learning.ray_cases: dataset cases as Ray tasks on a local Ray instance of 2 CPUs.

One Ray instance serves every test here (starting one takes about 7 s); the commands join it, as they join a
cluster given by ``--ray ADDRESS``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest
import ray

from DLPVCLib import cli as dlpvc_cli
from DLPVCLib import dataset
from DLPVCLib.dataset import folder as dataset_folder
from DoseRateCNNLib import dataset as dose_dataset
from DoseRateCNNLib.cli import datasets as dose_cli
from DoseRateCNNLib.data import DoseCaseSettings
from DosimetryCore.cli import main as cli
from DosimetryCore.core.resources import CACHE_ENVIRONMENT_VARIABLE
from DosimetryCore.learning import case_folder
from DosimetryCore.learning.ray_cases import CasesFailed, RayOptions

GRID = {"size": 32, "spacing_mm": 19.2}  # the smallest grid simulate-pvc takes (Testing/dlpvc/test_dataset.py)
FAST = replace(dataset.DEFAULT_ACQUISITION, views=12)
SEED, N = 3, 4


@pytest.fixture(scope="module", autouse=True)
def ray_instance(tmp_path_factory):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test writers below, for the workers
    with pytest.MonkeyPatch.context() as patch:  # the workers' kernel cache: the session's (conftest.py), too
        patch.setenv(CACHE_ENVIRONMENT_VARIABLE, str(tmp_path_factory.getbasetemp() / "cache"))
        ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def run_cli(monkeypatch, argv: list[str]) -> int:
    monkeypatch.setattr(
        cli, "_discovered_registrations",
        lambda group: [("simulate-pvc", dlpvc_cli.register_simulate_pvc)] if group == cli.ENTRY_POINT_GROUP else [],
    )  # fmt: skip
    return cli.main(argv)


def _files(folder):
    """Every file of a dataset folder -> its bytes; a case record without its wall time (it differs per run)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == dataset.CASE_RECORD:
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "wall_time_s"}).encode()
            files[str(path.relative_to(folder))] = data
    return files


def _flaky(folder, case_seed, attempts_dir, fail_times, progress=None):
    """Fails the first ``fail_times`` attempts at each case, counting attempts in ``attempts_dir``."""
    counter = attempts_dir / str(case_seed)
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt <= fail_times:
        raise RuntimeError(f"simulation failed at attempt {attempt}")
    (folder / "value.txt").write_text(str(case_seed))
    return {"seed": case_seed}


def _fails_one(folder, case_seed, parameters, manifest, device, progress=None):
    """A simulate-pvc writer whose case_00001 always fails."""
    if folder.name == ".case_00001.partial":
        raise RuntimeError("detector out of range")
    return {"seed": case_seed}


def test_cases_on_ray_are_byte_identical_to_the_local_pool(tmp_path):
    reports = []
    on_ray = dataset.write_dataset(
        tmp_path / "ray", N, SEED, acquisition=FAST, device="cpu", threads=1, ray=RayOptions(),
        progress=lambda fraction, message: reports.append((fraction, message)), **GRID,
    )  # fmt: skip
    pool = dataset.write_dataset(
        tmp_path / "pool", N, SEED, acquisition=FAST, device="cpu", workers=2, threads=1, **GRID
    )
    assert sorted(on_ray.simulated) == sorted(pool.simulated) == [f"case_0000{i}" for i in range(N)]
    ray_files, pool_files = _files(tmp_path / "ray"), _files(tmp_path / "pool")
    per_case = [len(dataset.case_images(on_ray.manifest, case["split"])) + 1 for case in on_ray.manifest["cases"]]
    assert len(ray_files) == 1 + sum(per_case)
    assert ray_files == pool_files
    assert sorted(message.split(" done")[0] for _, message in reports[1:-1]) == sorted(on_ray.simulated)
    assert reports[-2][0] == 1.0 and "4/4" in reports[-2][1]


def test_a_failed_case_is_retried_then_reported_and_the_others_are_written(tmp_path):
    cases = case_folder.manifest_cases(5, 3, (1, 0, 0), "x")
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    out = tmp_path / "data"
    out.mkdir()
    times = case_folder.write_cases(out, cases, _flaky, (attempts, 1), "case.json", ray=RayOptions(retries=1))
    assert sorted(times) == [case["id"] for case in cases]  # each failed once, then succeeded on its retry
    assert {path.read_text() for path in attempts.iterdir()} == {"2"}
    more = case_folder.manifest_cases(6, 2, (1, 0, 0), "x")
    with pytest.raises(CasesFailed) as failed:
        case_folder.write_cases(out, more, _flaky, (attempts, 9), "case.json", ray=RayOptions(retries=2))
    assert sorted(failed.value.failures) == ["case_00000", "case_00001"]
    assert failed.value.failures["case_00000"] == "RuntimeError: simulation failed at attempt 3"
    assert "2 case(s) failed 3 time(s) each" in str(failed.value)
    assert [(attempts / str(case["seed"])).read_text() for case in more] == ["3", "3"]


def test_simulate_pvc_with_ray_resumes_and_reports_failed_cases(tmp_path, monkeypatch, capsys):
    grid = ["--size", "32", "--spacing-mm", "19.2", "--views", "12", "--device", "cpu"]
    out = tmp_path / "data"
    assert run_cli(monkeypatch, ["simulate-pvc", "--out", str(out), "--n", "2", "--seed", "3", "--ray", *grid]) == 0
    assert "simulated 2 case(s)" in capsys.readouterr().out
    assert run_cli(monkeypatch, ["simulate-pvc", "--out", str(out), "--n", "2", "--seed", "3", "--ray", *grid]) == 0
    assert "simulated 0 case(s), 2 already complete" in capsys.readouterr().out
    monkeypatch.setattr(dataset_folder, "_write_pvc_case", _fails_one)
    argv = ["simulate-pvc", "--out", str(tmp_path / "bad"), "--n", "3", "--seed", "3", "--ray", "--retries", "1"]
    assert run_cli(monkeypatch, [*argv, *grid]) == 1
    error = capsys.readouterr().err
    assert "1 case(s) failed 2 time(s) each" in error
    assert "case_00001: RuntimeError: detector out of range" in error
    assert sorted(path.name for path in (tmp_path / "bad").iterdir()) == [
        ".case_00001.partial", "case_00000", "case_00002", "manifest.json"
    ]  # fmt: skip


def test_ray_options_are_checked_and_a_missing_ray_is_named(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "data")
    argv = ["simulate-pvc", "--out", out, "--n", "2", "--seed", "3", "--size", "32", "--spacing-mm", "19.2"]
    assert run_cli(monkeypatch, [*argv, "--ray", "--workers", "2"]) == 2
    assert "--workers: is for the local process pool" in capsys.readouterr().err
    assert run_cli(monkeypatch, [*argv, "--ray-cpus", "2"]) == 2
    assert "--ray-cpus: sizes the local Ray instance of --ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert run_cli(monkeypatch, [*argv, "--ray"]) == 2
    assert "--ray needs Ray, an optional dependency: pip install .[cluster]" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
    with pytest.raises(ValueError, match="threads"):
        RayOptions(threads=0)


def test_simulate_dose_cases_on_ray_are_byte_identical_to_this_process(tmp_path, monkeypatch, capsys):
    tiny = DoseCaseSettings(
        dose_spacing_mm=16.0, spect_spacing_mm=16.0, count_levels=(1.9e7,), iterations=2, subsets=4, views=24,
        photon_histories=20_000, batches=2,
    )  # fmt: skip
    dose_dataset.write_dose_dataset(tmp_path / "ray", 2, 4, tiny, device="cpu", threads=1, ray=RayOptions())
    dose_dataset.write_dose_dataset(tmp_path / "here", 2, 4, tiny, device="cpu", threads=1)
    assert _files(tmp_path / "ray") == _files(tmp_path / "here")
    monkeypatch.setattr(
        cli, "_discovered_registrations",
        lambda group: [("simulate-dose", dose_cli.register_simulate_dose)] if group == cli.ENTRY_POINT_GROUP else [],
    )  # fmt: skip
    argv = ["simulate-dose", "--out", str(tmp_path / "cli"), "--n", "1", "--seed", "4", "--ray", "--workers", "2"]
    assert cli.main(argv) == 2 and "--workers: is for the local process pool" in capsys.readouterr().err
