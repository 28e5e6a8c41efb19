"""DosimetryCore.learning.models: hash-checked weights and model cards under Resources/Models."""

from __future__ import annotations

import json
import re

import pytest
import torch

from DLPVCLib.networks import DLPVCModel
from DosimetryCore.core import resources
from DosimetryCore.learning import models

CARD_FIELDS = {
    "training_data": {"command": "deepdosimetry simulate --cases 8 --seed 3", "seeds": [3], "cases": 8},
    "training_command": "deepdosimetry train dlpvc --epochs 2 --seed 7",
    "hardware": "CPU (test)",
    "wall_time_s": 1.5,
    "epochs": 2,
    "metrics": {"SSIM": 0.95, "NRMSE_percent": 7.8},
    "baselines": {"no PVC": {"SSIM": 0.89, "NRMSE_percent": 10.4}, "IY-PVC": {"SSIM": 0.94}},
}


@pytest.fixture
def trained():
    torch.manual_seed(0)
    model = DLPVCModel("r2unet", channels=(2, 4)).eval()
    return model, {"architecture": model.config, **CARD_FIELDS}


def activity() -> torch.Tensor:
    return 1000.0 * torch.rand((1, 1, 8, 8, 8), generator=torch.Generator().manual_seed(1))


def test_save_load_round_trip_gives_identical_outputs(tmp_path, trained):
    model, fields = trained
    folder = models.save_model(model, "dlpvc-test", fields, folder=tmp_path)
    assert folder == tmp_path / "dlpvc-test"
    assert sorted(path.name for path in folder.iterdir()) == ["MODEL_CARD.md", "model.pt", "model_card.json"]
    loaded, card = models.load_model("dlpvc-test", DLPVCModel.from_config, device="cpu", folder=tmp_path)
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(activity()), model(activity()), rtol=0, atol=0)
    assert card["name"] == "dlpvc-test" and card["architecture"] == {"arch": "r2unet", "channels": [2, 4]}
    assert card["weights_sha256"] == models.sha256_of(folder / "model.pt")
    assert card["metrics"] == CARD_FIELDS["metrics"] and card["epochs"] == 2
    assert json.loads((folder / "model_card.json").read_text()) == card
    markdown = (folder / "MODEL_CARD.md").read_text()
    assert "| metric | dlpvc-test | no PVC | IY-PVC |" in markdown
    assert "| SSIM | 0.95 | 0.89 | 0.94 |" in markdown and "| NRMSE_percent | 7.8 | 10.4 | - |" in markdown
    assert card["weights_sha256"] in markdown
    assert models.list_models(tmp_path) == ["dlpvc-test"]


def test_provenance_line(tmp_path, trained):
    model, fields = trained
    models.save_model(model, "dlpvc-test", {**fields, "trained_utc": "2026-01-02T03:04:05+00:00"}, folder=tmp_path)
    card = models.read_card("dlpvc-test", tmp_path)
    assert models.model_provenance(card) == f"dlpvc-test {card['weights_sha256'][:12]} trained 2026-01-02"


def test_tampered_weights_are_refused(tmp_path, trained):
    model, fields = trained
    folder = models.save_model(model, "dlpvc-test", fields, folder=tmp_path)
    weights = folder / "model.pt"
    state = torch.load(weights, weights_only=True)
    next(iter(state.values())).add_(1e-3)
    torch.save(state, weights)
    with pytest.raises(ValueError, match=r"model 'dlpvc-test': sha256 mismatch .*the card says [0-9a-f]{64}"):
        models.load_model("dlpvc-test", DLPVCModel.from_config, device="cpu", folder=tmp_path)


def test_update_card_sets_fields_and_leaves_the_weights_and_their_training_time(tmp_path, trained):
    model, fields = trained
    folder = models.save_model(model, "dlpvc-test", fields, folder=tmp_path)
    weights, before = folder / "model.pt", models.read_card("dlpvc-test", tmp_path)
    data = weights.read_bytes()
    assert models.update_card("dlpvc-test", {"metrics": {"SSIM": 0.97}, "evaluation_x": {}}, tmp_path) == folder
    card = models.read_card("dlpvc-test", tmp_path)
    assert weights.read_bytes() == data
    assert card == before | {"metrics": {"SSIM": 0.97}, "evaluation_x": {}}
    assert "| SSIM | 0.97 | 0.89 | 0.94 |" in (folder / "MODEL_CARD.md").read_text()
    with pytest.raises(ValueError, match="trained_utc, weights_sha256 identify the weights"):
        models.update_card("dlpvc-test", {"weights_sha256": "0" * 64, "trained_utc": "now"}, tmp_path)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        models.update_card("dlpvc-test", {"metrics": {1j}}, tmp_path)
    assert models.read_card("dlpvc-test", tmp_path) == card  # nothing written by a refused update
    weights.write_bytes(data + b"x")
    with pytest.raises(ValueError, match="weights sha256 differs from its card"):
        models.update_card("dlpvc-test", {"metrics": {}}, tmp_path)


def test_missing_files_are_refused(tmp_path, trained):
    model, fields = trained
    with pytest.raises(ValueError, match="no folder .* never downloaded"):
        models.load_model("absent", DLPVCModel.from_config, device="cpu", folder=tmp_path)
    folder = models.save_model(model, "dlpvc-test", fields, folder=tmp_path)
    (folder / "model.pt").unlink()
    with pytest.raises(ValueError, match="weights file .*model.pt is missing"):
        models.load_model("dlpvc-test", DLPVCModel.from_config, device="cpu", folder=tmp_path)
    (folder / "model_card.json").unlink()
    with pytest.raises(ValueError, match="model card .*model_card.json is missing"):
        models.load_model("dlpvc-test", DLPVCModel.from_config, device="cpu", folder=tmp_path)
    assert models.list_models(tmp_path) == []
    (folder / "model_card.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        models.read_card("dlpvc-test", tmp_path)


def test_weights_that_do_not_fit_the_architecture(tmp_path, trained):
    model, fields = trained
    models.save_model(model, "dlpvc-test", {**fields, "architecture": {"arch": "r2unet", "channels": [2, 8]}}, tmp_path)
    with pytest.raises(ValueError, match="weights do not fit architecture"):
        models.load_model("dlpvc-test", DLPVCModel.from_config, device="cpu", folder=tmp_path)


def test_save_refusals(tmp_path, trained):
    model, fields = trained
    with pytest.raises(ValueError, match="card_fields: missing metrics, baselines"):
        models.save_model(
            model, "m", {key: value for key, value in fields.items() if key not in ("metrics", "baselines")}, tmp_path
        )
    with pytest.raises(ValueError, match="card_fields: not JSON-serialisable"):
        models.save_model(model, "m", {**fields, "epochs": torch.tensor(2)}, tmp_path)
    assert not (tmp_path / "m").exists()
    with pytest.raises(ValueError, match="not a valid model name"):
        models.save_model(model, "../escape", fields, tmp_path)
    models.save_model(model, "m", fields, tmp_path)
    with pytest.raises(ValueError, match="already holds a model; pass overwrite=True"):
        models.save_model(model, "m", fields, tmp_path)
    models.save_model(model, "m", {**fields, "epochs": 3}, tmp_path, overwrite=True)
    assert models.read_card("m", tmp_path)["epochs"] == 3


def test_default_folder_is_the_resources_models_folder(tmp_path, monkeypatch, trained):
    monkeypatch.setenv(resources.ENVIRONMENT_VARIABLE, str(tmp_path))
    assert models.list_models() == []
    model, fields = trained
    folder = models.save_model(model, "dlpvc-test", fields)
    assert folder == tmp_path / "Models" / "dlpvc-test"
    assert models.list_models() == ["dlpvc-test"]
    loaded, _ = models.load_model("dlpvc-test", DLPVCModel.from_config, device="cpu")
    assert isinstance(loaded, DLPVCModel)


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_shipped_model_cards_record_no_machine_paths():
    cards = sorted(resources.models_dir().glob("*/model_card.json"))
    assert cards
    for path in cards:
        absolute = [s for s in _strings(json.loads(path.read_text())) if re.match(r"^(/|~|[A-Za-z]:\\)", s)]
        assert absolute == [], path
