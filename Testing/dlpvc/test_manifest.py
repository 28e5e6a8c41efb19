"""DLPVCLib.dataset.read_manifest: datasets written before the unit suffixes were unified still load."""

from __future__ import annotations

import json

from DLPVCLib import dataset


def test_a_manifest_with_the_old_key_names_reads_with_todays(tmp_path):
    legacy = {
        "format": dataset.MANIFEST_FORMAT,
        "cases": [{"id": "case_00000", "seed": 1, "split": "train"}],
        "acquisition": {"energy_kev": 208.4, "sensitivity_cps_per_mbq": 9.0, "views": 120},
        "total_activity_range_mbq": [300.0, 3000.0],
    }
    (tmp_path / dataset.MANIFEST).write_text(json.dumps(legacy))
    manifest = dataset.read_manifest(tmp_path)
    assert manifest["acquisition"] == {"energy_keV": 208.4, "sensitivity_cps_per_MBq": 9.0, "views": 120}
    assert manifest["total_activity_range_MBq"] == [300.0, 3000.0]
    assert manifest["cases"] == legacy["cases"]
