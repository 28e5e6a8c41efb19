"""JSON records on disk (manifests, model cards, provenance): the one reader."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_json(path: str | os.PathLike, name: str) -> Any:
    """The JSON value in ``path``; a ValueError starting with ``name`` when it is not valid JSON text."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{name}: {path} is not valid JSON ({error})") from error
