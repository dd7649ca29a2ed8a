"""The encoder-decoder that maps diffraction amplitudes to complex object patches.

Encoder: three blocks of two 3x3 conv + ReLU and a 2x2 max-pool (w, 2w, 4w channels). Two decoders
(amplitude, phase) upsample twice and predict the central N/2 x N/2 of the patch, zero-padded to N
(the peer's design for a small probe); with `probe_big` they upsample a third time and predict the
whole N x N patch, for probes with real energy outside the centre. On the canonical data the probe
holds 4.7 % of its energy outside the central 32 x 32, and even the true object cut to that square
scores a Poisson NLL of 6.4 per pixel against 0.19 uncut, so `probe_big` is our default.
The amplitude head is a sigmoid: bounded on both sides, so it cannot collapse to a flat negative
floor the way the peer's SiLU head did.

With gridsize > 1 the same network predicts every member of a group from its own pattern, and
`merge_group` makes the members consistent (the overlap constraint). The peer instead fed the g^2
patterns in as channels of one network; here that network stuck at a flat object at every rate tried,
and from scratch so does this one, but this one's weights do not depend on the gridsize, so it starts
from a gridsize-1 model (`ptycho-train --init-model`) and the constraint then sharpens it
(docs/quality-experiments.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _double_conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
    ]


def _decoder(width: int, full: bool) -> nn.Sequential:
    stages = [nn.Upsample(scale_factor=2, mode="nearest"), *_double_conv(4 * width, 2 * width),
              nn.Upsample(scale_factor=2, mode="nearest"), *_double_conv(2 * width, width)]
    if full:
        stages += [nn.Upsample(scale_factor=2, mode="nearest"), *_double_conv(width, width)]
    return nn.Sequential(*stages, nn.Conv2d(width, 1, 1))


class PtychoNet(nn.Module):
    def __init__(self, size: int = 64, gridsize: int = 1, width: int = 32, probe_big: bool = True):
        super().__init__()
        if size % 8:
            raise ValueError(f"pattern size {size} must be a multiple of 8")
        self.size, self.gridsize, self.width, self.probe_big = size, gridsize, width, probe_big
        self.predicted_size = size if probe_big else size // 2
        self.encoder = nn.Sequential(
            *_double_conv(1, width), nn.MaxPool2d(2),
            *_double_conv(width, 2 * width), nn.MaxPool2d(2),
            *_double_conv(2 * width, 4 * width), nn.MaxPool2d(2),
        )
        self.amplitude = _decoder(width, probe_big)
        self.phase = _decoder(width, probe_big)
        # oneDNN's convolutions run ~1.5x faster on CPU in channels-last layout (one training step of
        # 8 patterns at width 16: 50 ms against 74 ms on 2 cores); only the order of floating-point sums
        # changes, not the model.
        self.to(memory_format=torch.channels_last)

    def forward(self, diffraction: torch.Tensor) -> torch.Tensor:
        """(B, C, N, N) normalised amplitudes -> (B, C, N, N) complex object patches, one per pattern."""
        groups, members, size = diffraction.shape[0], diffraction.shape[1], diffraction.shape[-1]
        patterns = diffraction.reshape(groups * members, 1, size, size)
        features = self.encoder(patterns.contiguous(memory_format=torch.channels_last))
        amplitude = torch.sigmoid(self.amplitude(features))
        phase = math.pi * torch.tanh(self.phase(features))
        pad = (self.size - self.predicted_size) // 2
        if pad:
            amplitude = nn.functional.pad(amplitude, (pad, pad, pad, pad))
            phase = nn.functional.pad(phase, (pad, pad, pad, pad))
        return torch.polar(amplitude, phase).reshape(groups, members, size, size)


def prediction_window(model: PtychoNet) -> torch.Tensor:
    """(N, N) weight of each pixel of a prediction when group members are merged: the stitcher's Hann
    window over the block the network predicts, zero outside."""
    from ptychoreg.core.geometry import stitch_window

    pad = (model.size - model.predicted_size) // 2
    return nn.functional.pad(torch.from_numpy(stitch_window(model.predicted_size).astype("float32")), (pad, pad, pad, pad))


def predict_patches(model: PtychoNet, inputs: torch.Tensor, offsets: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Complex object patches for a batch of groups; with gridsize > 1 the members are made consistent."""
    from ptychoreg.core.model.physics import merge_group

    patches = model(inputs)
    if patches.shape[1] > 1:
        patches = merge_group(patches, offsets, window)
    return patches
