"""One metric table: `report`, `evaluate-pvc` and model cards give the same keys, units and values."""

from __future__ import annotations

import numpy as np
import pytest

from DLPVCLib import evaluation
from DosimetryCore.core.volume import image_from_array
from DosimetryCore.evaluation import report, table


def test_report_and_evaluate_pvc_agree_on_one_case():
    rng = np.random.default_rng(11)
    truth = np.zeros((12, 12, 12))
    truth[3:9, 3:9, 3:9] = 1000.0 + 100.0 * rng.random((6, 6, 6))
    estimate = 0.9 * truth + 5.0 * rng.random(truth.shape)
    truth, estimate = truth.astype(np.float32), estimate.astype(np.float32)
    truth_image, estimate_image = (image_from_array(v, spacing=(4.0,) * 3, unit="Bq/mL") for v in (truth, estimate))
    row = report.method_metrics(truth_image, {"pvc": estimate_image})[0]
    card_row = evaluation.case_metrics(estimate.astype(np.float64), truth.astype(np.float64))
    assert list(card_row) == list(evaluation.METRICS) == list(table.METRICS)
    assert {key: row[key] for key in card_row} == pytest.approx(card_row, rel=1e-9)
    assert report.metric_units([row]) == table.METRIC_UNITS == {
        "ssim": "1", "nrmse_percent": "%", "vaa_percent": "%", "ad_percent": "%"
    }
