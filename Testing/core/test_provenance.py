"""DosimetryCore.core.provenance: the one record format, in image metadata."""

from __future__ import annotations

import hashlib

import numpy as np

from DosimetryCore.core import provenance
from DosimetryCore.core.metadata import PROVENANCE_KEY
from DosimetryCore.core.volume import image_from_array


def test_a_record_has_the_shared_fields_and_hashes_its_inputs(tmp_path):
    source = tmp_path / "in.nrrd"
    source.write_bytes(b"activity")
    record = provenance.record("deepdosimetry test", inputs={"input": source}, seed=3)
    assert {"generator", "deepdosimetry", "command", "versions", "created_utc"} <= set(record)
    assert record["inputs"]["input"] == {"path": str(source), "sha256": hashlib.sha256(b"activity").hexdigest()}
    assert record["seed"] == 3


def test_stamp_and_read_round_trip_and_commands_keep_the_library_fields(tmp_path):
    image = image_from_array(np.zeros((2, 2, 2), np.float32))
    assert provenance.read(image) is None
    provenance.stamp(image, {"method": "vdk", "generator": "library"})
    assert image.HasMetaDataKey(PROVENANCE_KEY)
    source = tmp_path / "a.nrrd"
    source.write_bytes(b"x")
    provenance.stamp_command(image, "deepdosimetry dose-rate", {"activity": source, "seg": None})
    record = provenance.read(image)
    assert record["method"] == "vdk" and record["generator"] == "library"
    assert set(record["inputs"]) == {"activity"} and "created_utc" in record
