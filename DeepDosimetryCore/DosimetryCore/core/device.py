"""Choice of the torch device every entry point accepts as ``device=``."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return the torch device to compute on.

    ``None`` or ``"auto"`` selects ``cuda`` when a CUDA device is available, else ``cpu``.
    Any other value is passed to :class:`torch.device`; asking for ``cuda`` on a machine without
    one raises a ValueError instead of failing later inside a kernel.
    """
    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device: {device!r} is not a torch device ({error})") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} was requested but no CUDA device is available")
    return resolved
