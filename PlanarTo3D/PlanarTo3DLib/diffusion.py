"""The slice prior of PlanarTo3D's diffusion path: a 2D denoising diffusion model of axial activity slices.

A MONAI ``DiffusionModelUNet`` predicts the noise added to an axial slice (y, x) of activity (epsilon
prediction), optionally conditioned on the patient's attenuation slice as a second input channel. Training draws
the noise level from MONAI's ``DDPMScheduler``; sampling (:mod:`PlanarTo3DLib.diffusion_sampling`) steps with its
``DDIMScheduler`` over the same linear beta schedule.

Units. Activity is in the network units of :mod:`PlanarTo3DLib.data` (share of the volume's total x
``ACTIVITY_SCALE``). The diffusion model sees the bounded logarithmic map ``value = 2 log(1 + share / SHARE_KNEE) /
log(1 + SHARE_MAX / SHARE_KNEE) - 1``, clipped to [-1, 1] (:func:`to_diffusion`): no activity at -1, the body's
typical share (0.1-0.2 on the CPU grid) at about -0.7, organs (share 1-3) near 0, the hottest lesions (share up to
:data:`SHARE_MAX`) at 1. The samplers clip their denoised estimates to the same range. An earlier linear map (2 x
share - 1) left hot voxels at values up to about 34, far outside the unit range the noise schedule assumes, and
DDIM from pure noise then returned nothing like the truth (``benchmarks/planar_diffusion_diagnosis.py``). A
uniform error in values is a uniform relative error in activity above the knee. The knee and the maximum suit the
CPU grid (:data:`PlanarTo3DLib.data.GRID_SHAPE_ZYX`): shares are per voxel, so on a grid of n times more voxels
they are n times smaller, and a prior for such a grid would need both scaled by 1/n (today constants, checked
against the value map recorded in the prior's config). The attenuation channel is mu (1/cm) x ``MU_SCALE``, as the
ResUNet's.

Tensors are (batch, channel, y, x), y the antero-posterior axis. Any slice size works: slices are padded with
zeros to multiples of ``2 ** (levels - 1)`` (:func:`pad_to_multiple`) and cropped back (:func:`crop_to`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

SHARE_KNEE = 0.1
"""Share (network units) where the value map turns from linear to logarithmic: about the body's background."""
SHARE_MAX = 40.0
"""Share mapped to 1; above it values are clipped. The virtual patients' hottest voxels hold shares of 7-17, their
organ-uptake variations up to about twice that."""
_LOG_RANGE = float(torch.log1p(torch.tensor(SHARE_MAX / SHARE_KNEE)))
DEFAULT_CHANNELS = (16, 32, 64)
"""Feature maps per level of the CPU model (MONAI's default is 32, 64, 64, 64 with attention)."""
TRAIN_TIMESTEPS = 1000
SCHEDULE = "linear_beta"
VALUE_MAP = {"kind": "log", "share_knee": SHARE_KNEE, "share_max": SHARE_MAX, "clipped": [-1.0, 1.0]}
"""How activity becomes the model's values (:func:`to_diffusion`), as configs and cards record it."""


def to_diffusion(share: torch.Tensor) -> torch.Tensor:
    """Activity share (network units, negative shares taken as 0) -> the diffusion model's values in [-1, 1]."""
    values = 2.0 * torch.log1p(share.clamp(min=0.0) / SHARE_KNEE) / _LOG_RANGE - 1.0
    return values.clamp(max=1.0)


def from_diffusion(values: torch.Tensor) -> torch.Tensor:
    """The diffusion model's values -> activity share (network units, >= 0 for values >= -1); the inverse of
    :func:`to_diffusion` on [-1, 1]."""
    return SHARE_KNEE * torch.expm1((values.clamp(-1.0, 1.0) + 1.0) * (_LOG_RANGE / 2.0))


def pad_to_multiple(slices: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad (B, C, Y, X) at the far edges of y and x to multiples of ``multiple``; returns the padded tensor and
    the original (Y, X)."""
    if slices.ndim != 4:
        raise ValueError(f"slices: expected (batch, channel, y, x), got shape {tuple(slices.shape)}")
    size = (int(slices.shape[-2]), int(slices.shape[-1]))
    pad_y, pad_x = (-size[0]) % multiple, (-size[1]) % multiple
    return nn.functional.pad(slices, (0, pad_x, 0, pad_y)), size


def crop_to(slices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, Y', X') cropped to (B, C, Y, X) = ``size``: the inverse of :func:`pad_to_multiple`."""
    return slices[..., : size[0], : size[1]]


def _groups(channels: Sequence[int]) -> int:
    """GroupNorm groups: the largest of 8, 4, 2, 1 dividing every level's channels."""
    return next(g for g in (8, 4, 2, 1) if all(c % g == 0 for c in channels))


class SlicePrior(nn.Module):
    """Noise-predicting 2D diffusion UNet of axial activity slices (MONAI's DiffusionModelUNet).

    Args:
        channels: feature maps per level (two or more); attention only in the UNet's middle block.
        num_res_blocks: residual blocks per level.
        ct_conditioning: take the attenuation slice (mu x MU_SCALE) as an input channel.
        pet_conditioning: take the pre-therapy PET slice (its activity share in diffusion values) as an input
            channel (after the attenuation when both).
    Shapes:
        forward(noisy (B, 1, Y, X), timesteps (B,), condition (B, C, Y, X) or None) -> predicted noise (B, 1, Y, X),
        C = :attr:`condition_channels` (see :meth:`condition`).
    """

    def __init__(
        self,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        num_res_blocks: int = 1,
        ct_conditioning: bool = False,
        pet_conditioning: bool = False,
    ) -> None:
        super().__init__()
        from monai.networks.nets import DiffusionModelUNet

        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or num_res_blocks < 1:
            raise ValueError(f"channels: need two or more levels and num_res_blocks >= 1, got {channels}")
        self.channels, self.num_res_blocks = channels, int(num_res_blocks)
        self.ct_conditioning, self.pet_conditioning = bool(ct_conditioning), bool(pet_conditioning)
        self.unet = DiffusionModelUNet(
            spatial_dims=2, in_channels=1 + self.condition_channels, out_channels=1, num_res_blocks=num_res_blocks,
            channels=channels, attention_levels=(False,) * len(channels), norm_num_groups=_groups(channels),
            num_head_channels=channels[-1],
        )  # fmt: skip

    @property
    def condition_channels(self) -> int:
        """Conditioning channels: the attenuation and/or the PET."""
        return int(self.ct_conditioning) + int(self.pet_conditioning)

    def condition(self, mu: torch.Tensor, pet: torch.Tensor | None) -> torch.Tensor | None:
        """The conditioning channels this prior takes, from the attenuation slices ``mu`` and the PET slices ``pet``
        (each (B, 1, Y, X)); None for an unconditioned prior."""
        if self.pet_conditioning and pet is None:
            raise ValueError("pet: this prior is conditioned on the pre-therapy PET; give the PET")
        chosen = [mu] * self.ct_conditioning + [pet] * self.pet_conditioning
        return torch.cat(chosen, dim=1) if chosen else None

    @property
    def multiple(self) -> int:
        """Slice sides are padded to multiples of this."""
        return 2 ** (len(self.channels) - 1)

    @property
    def config(self) -> dict:
        return {"architecture": "SliceDiffusionUNet", "channels": list(self.channels),
                "num_res_blocks": self.num_res_blocks, "ct_conditioning": self.ct_conditioning,
                "pet_conditioning": self.pet_conditioning,
                "train_timesteps": TRAIN_TIMESTEPS, "schedule": SCHEDULE, "prediction": "epsilon",
                "value_map": VALUE_MAP}  # fmt: skip

    @classmethod
    def from_config(cls, config: dict) -> SlicePrior:
        if config.get("architecture") != "SliceDiffusionUNet":
            raise ValueError(f"architecture: expected SliceDiffusionUNet, got {config.get('architecture')!r}")
        if config.get("value_map") != VALUE_MAP:
            raise ValueError(
                f"value_map: this prior was trained on values {config.get('value_map', 'linear')!r}, "
                f"this version samples {VALUE_MAP}; retrain it (train planar3d-diffusion)"
            )
        return cls(config["channels"], int(config["num_res_blocks"]), bool(config["ct_conditioning"]),
                   bool(config.get("pet_conditioning", False)))  # fmt: skip

    def forward(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        if (condition.shape[1] if condition is not None else 0) != self.condition_channels:
            raise ValueError(f"condition: this prior takes {self.condition_channels} conditioning channel(s)")
        inputs = torch.cat([noisy, condition], dim=1) if condition is not None else noisy
        padded, size = pad_to_multiple(inputs, self.multiple)
        return crop_to(self.unet(padded, timesteps), size)


def training_scheduler():
    """MONAI's DDPM scheduler of the prior's training (1000 steps, linear betas)."""
    from monai.networks.schedulers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, schedule=SCHEDULE, clip_sample=False)


def sampling_scheduler(steps: int):
    """MONAI's DDIM scheduler over the training schedule, set to ``steps`` steps; the denoised estimate of each step
    is clipped to the values' range [-1, 1]."""
    from monai.networks.schedulers import DDIMScheduler

    if not 1 <= steps <= TRAIN_TIMESTEPS:
        raise ValueError(f"steps: expected 1 to {TRAIN_TIMESTEPS} DDIM steps, got {steps}")
    scheduler = DDIMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, schedule=SCHEDULE, clip_sample=True)
    scheduler.set_timesteps(steps)
    return scheduler


class NoisePrediction(nn.Module):
    """The prior as the shared training loop sees it: ``forward(slices)`` draws a timestep and Gaussian noise per
    slice (from torch's generator, which the loop seeds every epoch), noises the slice and returns the predicted
    and the drawn noise stacked as channels (B, 2, Y, X); :func:`noise_loss` compares them.

    ``slices`` (B, C, Y, X): channel 0 the clean slice in diffusion values, channel 1 the attenuation, channel 2
    (when present) the PET slice in diffusion values.
    """

    def __init__(self, prior: SlicePrior) -> None:
        super().__init__()
        self.prior = prior
        self.scheduler = training_scheduler()

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        clean = slices[:, :1]
        noise = torch.randn_like(clean)
        timesteps = torch.randint(0, TRAIN_TIMESTEPS, (len(slices),), device=slices.device)
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        condition = self.prior.condition(slices[:, 1:2], slices[:, 2:3] if slices.shape[1] > 2 else None)
        return torch.cat([self.prior(noisy, timesteps, condition), noise], dim=1)


def noise_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between predicted and drawn noise (``target`` is unused: the noise is drawn inside)."""
    return nn.functional.mse_loss(output[:, 0], output[:, 1])
