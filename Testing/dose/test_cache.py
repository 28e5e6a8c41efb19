"""DosimetryCore.dose.cache: shipped kernels are read, generated ones go to the per-user cache only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from DosimetryCore.core import resources
from DosimetryCore.dose import cache

REPOSITORY = Path(__file__).resolve().parents[2]


def test_cache_folder_follows_the_environment_and_is_never_in_the_tree(monkeypatch, tmp_path):
    monkeypatch.setenv(resources.CACHE_ENVIRONMENT_VARIABLE, str(tmp_path / "c"))
    assert resources.kernel_cache_dir() == tmp_path / "c" / "Kernels"
    monkeypatch.delenv(resources.CACHE_ENVIRONMENT_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert REPOSITORY not in resources.cache_dir().parents


def test_a_new_entry_goes_to_the_cache_and_leaves_the_checkout_clean(monkeypatch, tmp_path):
    monkeypatch.setenv(resources.CACHE_ENVIRONMENT_VARIABLE, str(tmp_path))
    parameters = {"voxel_mm": [1.23, 4.56, 7.89], "seed": 1}
    stem = cache.entry_stem("test_kernel", parameters)
    path = cache.save(stem, {"a": np.ones((3, 3))}, {"parameters": parameters})
    assert path == tmp_path / "Kernels" / f"{stem}.npz" and path.is_file()
    arrays, record = cache.load(stem, parameters)
    assert np.array_equal(arrays["a"], np.ones((3, 3))) and record["parameters"] == parameters
    assert not list(resources.kernels_dir().glob(f"{stem}*"))
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "Resources"], cwd=REPOSITORY, capture_output=True, text=True
    )
    assert status.returncode != 0 or status.stdout == ""


def test_an_unwritable_cache_is_reported_not_swallowed(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(resources.CACHE_ENVIRONMENT_VARIABLE, str(blocker))
    with pytest.warns(UserWarning, match="DEEPDOSIMETRY_CACHE"):
        assert cache.save("x", {"a": np.ones(2)}, {"parameters": {}}) is None
