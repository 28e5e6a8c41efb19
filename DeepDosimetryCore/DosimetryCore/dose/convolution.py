"""Linear 3D convolution by FFT (torch), with FFT sizes chosen for speed.

The volume is zero-padded only as far as the kernel reaches (N + K//2 per axis, not N + K - 1), rounded up
to a 5-smooth size (2^a 3^b 5^c, even on the last axis), where FFT libraries are fastest. The kernel is
padded at the end without wrapping; the 'same'-size result is read at an offset of K//2, which is where the
full linear convolution has it. With P >= N + K//2 the circular wrap-around lands outside that window.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def fast_fft_size(n: int, even: bool = False) -> int:
    """Smallest 5-smooth integer (2^a 3^b 5^c) >= ``n``; even when ``even`` is True."""
    candidate = max(int(n), 1)
    while True:
        if not (even and candidate % 2):
            remainder = candidate
            for factor in (2, 3, 5):
                while remainder % factor == 0:
                    remainder //= factor
            if remainder == 1:
                return candidate
        candidate += 1


def fft_convolve(volume: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """'Same'-size linear convolution of ``volume`` with a centred ``kernel`` (zero outside the volume).

    result[i] = sum_j volume[j] * kernel[i - j + K//2], computed in the dtype of ``volume`` (float32 or float64)
    on its device.

    Args:
        volume: shape (Z, Y, X).
        kernel: shape (kz, ky, kx), odd sizes, centre at index k//2 on every axis. Parts of the kernel further
            from the centre than the volume is long cannot reach any output voxel and are dropped first.
    Returns:
        tensor of shape (Z, Y, X) on the volume's device.
    """
    return fft_convolve_many(volume, [kernel])[0]


def fft_convolve_many(volume: torch.Tensor, kernels: list[torch.Tensor]) -> list[torch.Tensor]:
    """:func:`fft_convolve` of one volume with several kernels, transforming the volume once."""
    if volume.ndim != 3 or any(kernel.ndim != 3 for kernel in kernels):
        shapes = [tuple(kernel.shape) for kernel in kernels]
        raise ValueError(f"volume, kernels: expected 3D tensors, got shapes {tuple(volume.shape)}, {shapes}")
    if any(k % 2 == 0 for kernel in kernels for k in kernel.shape):
        shapes = [tuple(kernel.shape) for kernel in kernels]
        raise ValueError(f"kernel: sizes must be odd so that it has a centre voxel, got {shapes}")
    kernels = [_cropped(kernel.to(device=volume.device, dtype=volume.dtype), volume.shape) for kernel in kernels]
    reach = [max(kernel.shape[axis] // 2 for kernel in kernels) for axis in range(3)]
    padded = [fast_fft_size(n + h) for n, h in zip(volume.shape[:2], reach[:2], strict=True)]
    padded.append(fast_fft_size(volume.shape[2] + reach[2], even=True))
    volume_spectrum = torch.fft.rfftn(volume, s=padded)
    results = []
    for kernel in kernels:
        full = torch.fft.irfftn(volume_spectrum * torch.fft.rfftn(kernel, s=padded), s=padded)
        (z, y, x), (hz, hy, hx) = volume.shape, [k // 2 for k in kernel.shape]
        results.append(full[hz : hz + z, hy : hy + y, hx : hx + x].contiguous())
    return results


def _cropped(kernel: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The kernel without offsets that no two voxels of a volume of ``shape`` can have (|offset| >= N)."""
    slices = []
    for k, n in zip(kernel.shape, shape, strict=True):
        half = k // 2
        keep = min(half, n - 1)
        slices.append(slice(half - keep, half + keep + 1))
    return kernel[tuple(slices)]
