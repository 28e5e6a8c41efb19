"""Training access to a DL-PVC dataset folder: the torch Dataset of one split."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from torch.utils.data import Dataset

from DLPVCLib.dataset.folder import is_complete, read_manifest
from DLPVCLib.dataset.layout import RECONSTRUCTIONS, SPLITS, case_images, split_reconstructions
from DosimetryCore import io
from DosimetryCore.core.metadata import UNIT_KEY
from DosimetryCore.core.units import ACTIVITY_UNIT


class PVCDataset(Dataset):
    """One split of a DL-PVC dataset folder as ``(input, target)`` tensor pairs.

    Args:
        folder: a dataset folder written by :func:`write_dataset`.
        split: ``"train"``, ``"val"`` or ``"test"`` (the manifest's assignment).
        input_key: the reconstruction fed to the network, one of :data:`RECONSTRUCTIONS` (default
            ``"osem_rr_noisy"``, seed 003's RR_n, its clinical setting).
        flips: mirror each item along each of z, y and x with probability 1/2 (the same flips for
            input and target), drawn from torch's global generator (which
            :func:`DosimetryCore.learning.training.train` seeds per epoch). A mirrored pair is itself a
            valid training pair: the simulated orbit is circular with equally spaced views over
            360 degrees about the grid's centre, so mirroring the activity and its attenuation
            map mirrors the reconstruction (up to interpolation in the projector), and each case
            stands for 8. Off by default (evaluation).
        cache: keep every item's arrays in memory once read (float32, 2 x 4 bytes per voxel per case: 2 MB a
            64^3 case), so a training epoch does not decode the gzip-compressed NRRD files again.

    Items:
        ``(input, target)``: float32 tensors of shape (1, z, y, x) in Bq/mL: the reconstruction
        and the true activity concentration (no normalisation: :class:`DLPVCModel` normalises its
        input itself). Every case of the split must be complete.

    Raises:
        ValueError: missing folder or manifest, unknown split or input, an empty split, an
        incomplete case.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        split: str = "train",
        input_key: str = "osem_rr_noisy",
        flips: bool = False,
        cache: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split: unknown {split!r}; choose one of {', '.join(SPLITS)}")
        if input_key not in RECONSTRUCTIONS:
            raise ValueError(f"input: unknown reconstruction {input_key!r}; choose one of {', '.join(RECONSTRUCTIONS)}")
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        held = split_reconstructions(self.manifest, split)
        if input_key not in held:
            raise ValueError(
                f"input: the {split} cases of {self.folder} hold only {', '.join(held)}, not {input_key}; simulate a "
                f"dataset with --reconstructions {input_key}"
            )
        self.split, self.input_key, self.flips = split, input_key, bool(flips)
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None
        self.cases = [case for case in self.manifest["cases"] if case["split"] == split]
        if not self.cases:
            raise ValueError(
                f"split: the {split!r} split of {self.folder} is empty "
                f"({self.manifest['split_counts']}); simulate more cases (--n)"
            )
        incomplete = [
            case["id"] for case in self.cases if not is_complete(self.folder / case["id"], case, self.manifest)
        ]
        if incomplete:
            raise ValueError(
                f"data: {len(incomplete)} {split} case(s) of {self.folder} are incomplete ({', '.join(incomplete[:5])}"
                f"{', ...' if len(incomplete) > 5 else ''}); run simulate-pvc again to finish them"
            )

    @property
    def case_ids(self) -> list[str]:
        """Ids (folder names) of the split's cases, in manifest order."""
        return [case["id"] for case in self.cases]

    def __len__(self) -> int:
        return len(self.cases)

    def image(self, index: int, stem: str) -> sitk.Image:
        """Image ``stem`` (one the split holds: :func:`~DLPVCLib.dataset.layout.case_images`) of case ``index``
        of the split, as written."""
        stems = case_images(self.manifest, self.split)
        if stem not in stems:
            raise ValueError(
                f"stem: the {self.split} cases of {self.folder} hold no {stem!r}; they hold {', '.join(stems)}"
            )
        return io.read_image(self.folder / self.cases[index]["id"] / f"{stem}.nrrd")

    def _tensor(self, index: int, stem: str) -> torch.Tensor:
        image = self.image(index, stem)
        unit = image.GetMetaData(UNIT_KEY) if image.HasMetaDataKey(UNIT_KEY) else None
        if unit != ACTIVITY_UNIT:
            raise ValueError(f"{self.cases[index]['id']}/{stem}.nrrd: unit is {unit}, expected {ACTIVITY_UNIT}")
        return torch.from_numpy(sitk.GetArrayFromImage(image).astype(np.float32, copy=False))[None]

    def pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ``index`` as written, never mirrored (from the cache when ``cache`` is on)."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        pair = self._tensor(index, self.input_key), self._tensor(index, "truth")
        if self._cache is not None:
            self._cache[index] = pair
        return pair

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair = self.pair(index)
        if not self.flips:
            return pair
        dims = [dim for dim in (1, 2, 3) if torch.randint(0, 2, ()).item()]
        return tuple(tensor.flip(dims) for tensor in pair) if dims else pair
