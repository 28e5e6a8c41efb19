"""DosimetryCore.learning.networks: R2U-Net's recurrent blocks and the R2U-Net itself."""

from __future__ import annotations

import pytest
import torch

from DosimetryCore.learning.networks import R2UNet, RecurrentConvBlock, RecurrentResidualBlock


def n_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def conv_parameters(c_in: int, c_out: int, kernel: int, spatial_dims: int = 3, norm: bool = True) -> int:
    """Hand count: kernel weights + bias, plus batch-norm scale and shift."""
    return c_in * c_out * kernel**spatial_dims + c_out + (2 * c_out if norm else 0)


@pytest.mark.parametrize("t", [1, 2, 5])
def test_recurrent_block_shares_one_convolution(t):
    block = RecurrentConvBlock(3, channels=4, t=t)
    assert n_parameters(block) == conv_parameters(4, 4, 3)


@pytest.mark.parametrize("t", [0, 2, 3])
def test_recurrent_block_applies_its_convolution_t_plus_one_times(t):
    torch.manual_seed(0)
    block = RecurrentConvBlock(3, channels=2, t=t).eval()
    calls = []
    block.conv.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0]))
    x = torch.rand(1, 2, 8, 8, 8)
    y = block(x)
    assert len(calls) == t + 1
    # x1 = conv(x); for _ in range(t): x1 = conv(x + x1)
    expected = block.conv(x)
    for _ in range(t):
        expected = block.conv(x + expected)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_residual_block_parameters_and_residual_path():
    torch.manual_seed(0)
    block = RecurrentResidualBlock(3, in_channels=3, out_channels=4, t=2).eval()
    projection = 3 * 4 + 4  # 1x1x1 convolution with bias
    assert n_parameters(block) == projection + 2 * conv_parameters(4, 4, 3)
    assert block.recurrent[0].conv is not block.recurrent[1].conv
    x = torch.rand(2, 3, 8, 8, 8)
    projected = block.project(x)
    assert projected.shape == (2, 4, 8, 8, 8)
    torch.testing.assert_close(block(x), projected + block.recurrent(projected), rtol=0, atol=0)
    # With the recurrent branch silenced (zero scale and shift after its last convolution, then ReLU),
    # only the residual path is left.
    last_norm = block.recurrent[1].conv.adn.N
    torch.nn.init.zeros_(last_norm.weight)
    torch.nn.init.zeros_(last_norm.bias)
    torch.testing.assert_close(block(x), projected, rtol=0, atol=0)


def test_r2unet_shapes_3d_and_2d():
    torch.manual_seed(0)
    network = R2UNet(spatial_dims=3, in_channels=2, out_channels=3, channels=(4, 8, 16), t=2)
    assert network(torch.rand(2, 2, 16, 16, 16)).shape == (2, 3, 16, 16, 16)
    assert network(torch.rand(1, 2, 8, 12, 16)).shape == (1, 3, 8, 12, 16)
    flat = R2UNet(spatial_dims=2, channels=(4, 8), up_kernel_size=3)
    assert flat(torch.rand(1, 1, 10, 6)).shape == (1, 1, 10, 6)


def test_r2unet_parameter_count_by_hand():
    network = R2UNet(spatial_dims=3, in_channels=1, out_channels=1, channels=(2, 4), t=2, up_kernel_size=2)

    def rrcnn(c_in, c_out):
        return c_in * c_out + c_out + 2 * conv_parameters(c_out, c_out, 3)

    expected = (
        rrcnn(1, 2)  # encoder level 1
        + rrcnn(2, 4)  # encoder level 2
        + conv_parameters(4, 2, 2)  # transposed convolution 4 -> 2 (kernel 2) with batch norm
        + rrcnn(4, 2)  # decoder on the concatenated skip
        + 2 * 1
        + 1  # output 1x1x1 convolution
    )
    assert n_parameters(network) == expected


def test_r2unet_refuses_sizes_it_cannot_halve():
    network = R2UNet(channels=(2, 4, 8, 16))
    assert network.required_multiple == 8
    with pytest.raises(ValueError, match=r"spatial size \(16, 16, 12\) must be a multiple of 8"):
        network(torch.rand(1, 1, 16, 16, 12))
    with pytest.raises(ValueError, match="expected a \\(batch, channel, 3 spatial\\) tensor"):
        network(torch.rand(1, 16, 16, 16))
    with pytest.raises(ValueError, match="channels"):
        R2UNet(channels=(8,))
    with pytest.raises(ValueError, match="spatial_dims: must be 2 or 3"):
        R2UNet(spatial_dims=1)
    with pytest.raises(ValueError, match="t: must be >= 0"):
        RecurrentConvBlock(3, 2, t=-1)


def test_r2unet_runs_on_the_full_128_cubed_fov():
    assert R2UNet().required_multiple == 8
    network = R2UNet(channels=(1, 2, 2, 2), t=1).eval()  # few channels: about 2 s on one CPU core
    with torch.no_grad():
        assert network(torch.rand(1, 1, 128, 128, 128)).shape == (1, 1, 128, 128, 128)
