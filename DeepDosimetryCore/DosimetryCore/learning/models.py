"""Model registry: trained weights with their model cards under ``Resources/Models/<name>/``.

Each model folder holds

- ``model.pt``: the network's ``state_dict`` (CPU tensors, read with ``weights_only=True``);
- ``model_card.json``: the machine-readable card (fields below), including the weights' sha256;
- ``MODEL_CARD.md``: the same card for people, with the held-out metrics next to the baselines.

Card fields given by the trainer (:data:`REQUIRED_CARD_FIELDS`): ``architecture`` (JSON
constructor arguments, passed to the caller's ``build`` function on load), ``training_data``
(what was simulated: command, seeds, case count), ``training_command``, ``hardware``,
``wall_time_s``, ``epochs``, ``metrics`` (held-out metric -> value) and ``baselines`` (baseline
name -> {metric -> value}); further fields are kept as given. Fields set by :func:`save_model`:
``name``, ``weights_file``, ``weights_sha256``, ``trained_utc`` (unless given) and ``format``.

Nothing is ever downloaded: a model is what its folder holds, and weights whose sha256 differs
from the card's are refused.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from DosimetryCore.core.device import resolve_device
from DosimetryCore.core.resources import models_dir
from DosimetryCore.io.outputs import atomic_path
from DosimetryCore.io.records import read_json

WEIGHTS_FILE = "model.pt"
CARD_FILE = "model_card.json"
CARD_MARKDOWN = "MODEL_CARD.md"
CARD_FORMAT = 1
REQUIRED_CARD_FIELDS = (
    "architecture",
    "training_data",
    "training_command",
    "hardware",
    "wall_time_s",
    "epochs",
    "metrics",
    "baselines",
)


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _models_root(folder: str | Path | None) -> Path:
    return models_dir() if folder is None else Path(folder)


def _format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metric_table(name: str, metrics: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A Markdown table: one row per metric, one column for the model and one per baseline."""
    columns = [name, *baselines]
    rows = list(dict.fromkeys([*metrics, *(metric for values in baselines.values() for metric in values)]))
    return [
        "| metric | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
        *(
            f"| {metric} | "
            + " | ".join(_format_value(values.get(metric, "-")) for values in (metrics, *baselines.values()))
            + " |"
            for metric in rows
        ),
    ]


HELD_OUT_PREFIX = "evaluation_"
"""Card fields ``evaluation_<data>`` holding a further held-out table (``metrics``, ``baselines``, ``evaluation``),
e.g. a DL-PVC model's patient-like torsos beside seed 003's random shapes; each gets its own Markdown table."""


def _further_tables(card: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, value in card.items():
        if key.startswith(HELD_OUT_PREFIX) and isinstance(value, Mapping) and "metrics" in value:
            lines += ["", f"## Held-out metrics: {key[len(HELD_OUT_PREFIX) :]}", ""]
            lines += _metric_table(card["name"], value["metrics"], value.get("baselines", {}))
    return lines


def _card_markdown(card: Mapping[str, Any]) -> str:
    known = {"name", "format", *REQUIRED_CARD_FIELDS}
    extra = [f"- {key}: {json.dumps(value)}" for key, value in card.items() if key not in known]
    lines = [
        f"# {card['name']}",
        "",
        f"Provenance: `{model_provenance(card)}`",
        "",
        f"- architecture: `{json.dumps(card['architecture'])}`",
        f"- weights: `{card['weights_file']}`, sha256 `{card['weights_sha256']}`",
        f"- training data: {json.dumps(card['training_data'])}",
        f"- training command: `{card['training_command']}`",
        f"- hardware: {card['hardware']}",
        f"- training: {card['epochs']} epochs, {_format_value(float(card['wall_time_s']))} s wall time",
        *extra,
        "",
        "## Held-out metrics",
        "",
        *_metric_table(card["name"], card["metrics"], card["baselines"]),
        *_further_tables(card),
        "",
    ]
    return "\n".join(lines)


def check_model_name(name: str, option: str = "name") -> str:
    """``name`` if it can name a model folder (letters, digits, ``-``, ``_``, ``.``; not starting with a dot)."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ValueError(f"{option}: {name!r} is not a valid model name (letters, digits, '-', '_', '.')")
    return name


def check_new_model_name(name: str, folder: str | Path | None, overwrite: bool, option: str = "--save-model") -> str:
    """``name`` if a model may be saved under it: a valid name, not installed yet unless ``overwrite``."""
    check_model_name(name, option)
    if name in list_models(folder) and not overwrite:
        raise ValueError(f"{option}: model {name!r} exists; pass --overwrite to replace it")
    return name


def save_model(
    model: nn.Module,
    name: str,
    card_fields: Mapping[str, Any],
    folder: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model``'s weights and card into ``<folder>/<name>/``; returns that folder.

    Args:
        model: the trained network (its ``state_dict`` is saved as CPU tensors).
        name: model name, also the folder name (letters, digits, ``-``, ``_``, ``.``).
        card_fields: the fields of :data:`REQUIRED_CARD_FIELDS` (JSON-serialisable) and any more.
        folder: the models root (default :func:`DosimetryCore.core.resources.models_dir`).
        overwrite: replace an existing model of that name (refused otherwise).
    """
    check_model_name(name)
    missing = [field for field in REQUIRED_CARD_FIELDS if field not in card_fields]
    if missing:
        raise ValueError(f"card_fields: missing {', '.join(missing)}")
    try:
        json.dumps(dict(card_fields))
    except (TypeError, ValueError) as error:
        raise ValueError(f"card_fields: not JSON-serialisable ({error})") from error
    model_folder = _models_root(folder) / name
    if (model_folder / CARD_FILE).exists() and not overwrite:
        raise ValueError(f"model {name!r}: {model_folder} already holds a model; pass overwrite=True to replace it")
    model_folder.mkdir(parents=True, exist_ok=True)
    weights = model_folder / WEIGHTS_FILE
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    with atomic_path(weights) as temporary:
        torch.save(state, temporary)
    card = {
        "name": name,
        "trained_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **card_fields,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": sha256_of(weights),
        "format": CARD_FORMAT,
    }
    text = json.dumps(card, indent=2) + "\n"
    with atomic_path(model_folder / CARD_FILE) as temporary:
        temporary.write_text(text, encoding="utf-8")
    with atomic_path(model_folder / CARD_MARKDOWN) as temporary:
        temporary.write_text(_card_markdown(card), encoding="utf-8")
    return model_folder


CARD_IDENTITY_FIELDS = ("name", "trained_utc", "weights_file", "weights_sha256", "format")
"""Card fields :func:`update_card` never changes: what the weights are and when they were trained."""


def update_card(name: str, card_fields: Mapping[str, Any], folder: str | Path | None = None) -> Path:
    """Set ``card_fields`` (e.g. held-out metrics) in installed model ``name``'s card; returns its folder.

    The weights file is not rewritten, so its bytes, its sha256 and the card's ``trained_utc`` stay as they were
    (:func:`save_model` re-serialises the weights: the same tensors, other bytes, another sha256).
    The JSON card and ``MODEL_CARD.md`` are rewritten atomically.

    Raises:
        ValueError: no such model, a card field of :data:`CARD_IDENTITY_FIELDS` given, fields that are not
            JSON-serialisable, or weights whose sha256 is no longer the card's.
    """
    card = read_card(name, folder)
    identity = sorted(set(card_fields) & set(CARD_IDENTITY_FIELDS))
    if identity:
        raise ValueError(f"card_fields: {', '.join(identity)} identify the weights and cannot be updated")
    model_folder = _models_root(folder) / name
    if sha256_of(model_folder / card["weights_file"]) != card["weights_sha256"]:
        raise ValueError(f"model {name!r}: weights sha256 differs from its card; refusing to update the card")
    card |= dict(card_fields)
    try:
        text = json.dumps(card, indent=2) + "\n"
    except (TypeError, ValueError) as error:
        raise ValueError(f"card_fields: not JSON-serialisable ({error})") from error
    with atomic_path(model_folder / CARD_FILE) as temporary:
        temporary.write_text(text, encoding="utf-8")
    with atomic_path(model_folder / CARD_MARKDOWN) as temporary:
        temporary.write_text(_card_markdown(card), encoding="utf-8")
    return model_folder


def read_card(name: str, folder: str | Path | None = None) -> dict[str, Any]:
    """The model card of model ``name``; ValueError when the model or its card is missing or unreadable."""
    model_folder = _models_root(folder) / name
    card_path = model_folder / CARD_FILE
    if not model_folder.is_dir():
        raise ValueError(f"model {name!r}: no folder {model_folder} (models are never downloaded)")
    if not card_path.is_file():
        raise ValueError(f"model {name!r}: model card {card_path} is missing")
    card = read_json(card_path, f"model {name!r}: model card")
    missing = [field for field in (*REQUIRED_CARD_FIELDS, "weights_file", "weights_sha256") if field not in card]
    if missing:
        raise ValueError(f"model {name!r}: model card {card_path} lacks {', '.join(missing)}")
    return card


def load_model(
    name: str,
    build: Callable[[dict[str, Any]], nn.Module],
    device: str | torch.device | None = None,
    folder: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load model ``name`` after checking its weights' sha256 against its card.

    Args:
        name: model folder name under ``folder``.
        build: builds the untrained network from the card's ``architecture`` (for example
            ``DLPVCModel.from_config``).
        device: torch device for the model (``None``: CUDA when available).
        folder: the models root (default :func:`DosimetryCore.core.resources.models_dir`).

    Returns:
        ``(model, card)``, the model on ``device`` in eval mode.

    Raises:
        ValueError: missing folder, card or weights; sha256 mismatch; weights that do not fit the
            built architecture.
    """
    card = read_card(name, folder)
    weights = _models_root(folder) / name / card["weights_file"]
    if not weights.is_file():
        raise ValueError(f"model {name!r}: weights file {weights} is missing")
    actual = sha256_of(weights)
    if actual != card["weights_sha256"]:
        raise ValueError(
            f"model {name!r}: sha256 mismatch for {weights}: the card says {card['weights_sha256']}, "
            f"the file has {actual}; the weights were changed or damaged"
        )
    device = resolve_device(device)
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise ValueError(
            f"model {name!r}: weights file {weights} is not a readable PyTorch state dict ({error})"
        ) from error
    model = build(card["architecture"])
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"model {name!r}: weights do not fit architecture {card['architecture']} ({error})") from error
    return model.to(device).eval(), card


def list_models(folder: str | Path | None = None) -> list[str]:
    """Names of the models (sub-folders holding a model card) under ``folder``, sorted."""
    root = _models_root(folder)
    if not root.is_dir():
        return []
    return sorted(path.name for path in root.iterdir() if (path / CARD_FILE).is_file())


def model_provenance(card: Mapping[str, Any]) -> str:
    """One line naming a model for output metadata: ``"<name> <sha256[:12]> trained <date>"``."""
    return f"{card['name']} {card['weights_sha256'][:12]} trained {str(card.get('trained_utc', 'unknown'))[:10]}"


STAGE_FIELDS = ("trained_utc", "training_data", "training_command", "hardware", "wall_time_s", "epochs", "loss",
                "augmentation", "initialised_from")  # fmt: skip
"""Card fields of an initial model that its fine-tuned successor records (``initialised_from``)."""


def initialise_from(
    model: nn.Module,
    name: str,
    build: Callable[[dict[str, Any]], nn.Module],
    folder: str | Path | None = None,
    hint: str = "",
) -> dict[str, Any]:
    """Load installed model ``name``'s weights into ``model`` (whose ``config`` must equal the card's architecture)
    to fine-tune it; returns how ``name`` was trained.

    Returns:
        ``{"name", "weights_sha256"}`` and the card's :data:`STAGE_FIELDS` (its own data, command, hardware, wall
        time and epochs; an ``initialised_from`` of its own keeps the whole chain).

    Raises:
        ValueError: no such model, weights failing their hash check, or another architecture (``hint`` says what
            to change).
    """
    source, card = load_model(name, build, "cpu", folder)
    if card["architecture"] != model.config:
        raise ValueError(f"init-model: {name} is {card['architecture']}, not the {model.config} asked for; {hint}")
    model.load_state_dict(source.state_dict())
    return {"name": name, "weights_sha256": card["weights_sha256"]} | {
        key: card[key] for key in STAGE_FIELDS if key in card
    }


def total_training(summary: Mapping[str, Any]) -> tuple[int, float]:
    """Epochs and wall time (s) of a training summary's run together with every stage it was fine-tuned from
    (``initialised_from``)."""
    epochs, seconds = summary["result"]["epochs_run"], summary["result"]["wall_time_s"]
    stage = summary.get("initialised_from")
    while stage:
        epochs, seconds = epochs + stage["epochs"], seconds + stage["wall_time_s"]
        stage = stage.get("initialised_from")
    return epochs, seconds
