"""PlanarTo3DLib.network: the 3D ResUNet (residual GroupNorm-Conv-ReLU blocks, summed skips)."""

from __future__ import annotations

import pytest
import torch

from PlanarTo3DLib.network import ResidualBlock, ResUNet3D, padded_shape


def test_shapes_config_and_rebuild():
    torch.manual_seed(0)
    model = ResUNet3D(3, (4, 8, 16))
    x = torch.randn(2, 3, 16, 8, 12)
    assert model(x).shape == (2, 1, 16, 8, 12)
    rebuilt = ResUNet3D.from_config(model.config)
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt(x), model(x))
    with pytest.raises(ValueError, match="expected ResUNet3D"):
        ResUNet3D.from_config({"architecture": "UNet"})


def test_residual_block_adds_its_first_unit_and_skips_are_summed():
    block = ResidualBlock(3, 4)
    for layer in block.third:
        if isinstance(layer, torch.nn.Conv3d):
            layer.weight.data.zero_()
    x = torch.randn(1, 3, 4, 4, 4)
    assert torch.allclose(block(x), torch.relu(block.first(x)))
    model = ResUNet3D(2, (4, 8))
    assert model.ups[0].out_channels == 4 and model.decoders[0].first[1].in_channels == 4  # sum keeps 4 channels


def test_padded_shape_is_a_multiple_of_the_poolings():
    assert padded_shape((52, 38, 57), 4) == (56, 40, 64)
    assert padded_shape((64, 40, 56)) == (64, 40, 56)
