"""DosimetryCore.evaluation.histograms: cumulative dose-volume histograms per segment."""

from __future__ import annotations

import numpy as np
import pytest

from DosimetryCore.evaluation.histograms import cumulative_histograms, plot_histograms


def test_cumulative_histograms_count_the_volume_at_or_above_each_dose(tmp_path):
    values = np.array([[[1.0, 2.0, 3.0, 4.0, 8.0, 8.0]]])
    labels = np.array([[[1, 1, 1, 1, 2, 0]]])
    axis, curves = cumulative_histograms(values, labels, {1: "a", 2: "b", 3: "absent"}, bins=4)
    np.testing.assert_allclose(axis, [0.0, 2.0, 4.0, 6.0, 8.0])  # up to the largest value inside a segment
    np.testing.assert_allclose(curves["a"], [100.0, 75.0, 25.0, 0.0, 0.0])
    np.testing.assert_allclose(curves["b"], [100.0, 100.0, 100.0, 100.0, 100.0])
    assert set(curves) == {"a", "b"}
    assert plot_histograms(axis, curves, tmp_path / "dvh.png", "Gy/h", "test").stat().st_size > 1000
    with pytest.raises(ValueError, match="none of the named segments"):
        cumulative_histograms(values, labels, {5: "x"})
