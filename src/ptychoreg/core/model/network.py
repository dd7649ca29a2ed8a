"""The encoder-decoder that maps diffraction amplitudes to complex object patches.

Encoder: three blocks of two 3x3 conv + ReLU and a 2x2 max-pool (w, 2w, 4w channels). Two decoders
(amplitude, phase) upsample twice and predict the central N/2 x N/2 of the patch, zero-padded to N
(PtychoPINN's design for a small probe); with `probe_big` they upsample a third time and predict the
whole N x N patch, for probes with real energy outside the centre. The canonical probe has such energy
(docs/quality-experiments.md), so `probe_big` is our default.
The amplitude head is a sigmoid: bounded on both sides, so it cannot collapse to a flat negative
floor the way PtychoPINN's SiLU head did.

Two options make the network faster and better per second of training (docs/quality-experiments.md,
fifth round); the defaults are PtychoPINN's layout, which the regression runs:
- `heads="shared"`: one decoder with two outputs (amplitude and phase logits) instead of one decoder per
  part. Amplitude and phase are two views of one complex patch, and the far field mixes them; one decoder
  learns both from the same features, with fewer weights.
- `upsampling="subpixel"`: the last doubling of resolution is a sub-pixel convolution (Shi et al. 2016):
  a 3x3 conv at half resolution gives 4 values per output pixel, which PixelShuffle rearranges. The
  full-resolution double conv, the largest single cost of a training step, is gone.

With gridsize > 1 the same network predicts every member of a group from its own pattern, and
`merge_group` makes the members consistent (the overlap constraint). PtychoPINN instead fed the g^2
patterns in as channels of one network; here that network stuck at a flat object at every rate tried,
and from scratch so does this one, but this one's weights do not depend on the gridsize, so it starts
from a gridsize-1 model (`ptycho-train --init-model`) and the constraint then sharpens it
(docs/quality-experiments.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ptychoreg.core.geometry import stitch_window
from ptychoreg.core.model.physics import merge_group


def _double_conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(inplace=True),
    ]


def _decoder(width: int, doublings: int, outputs: int, subpixel: bool) -> nn.Sequential:
    """Upsample the encoder's 4w channels `doublings` times (4w -> 2w -> w -> w) to `outputs` logit maps."""
    channels = (4 * width, 2 * width, width, width)
    stages: list[nn.Module] = []
    for i in range(doublings - subpixel):
        stages += [nn.Upsample(scale_factor=2, mode="nearest"), *_double_conv(channels[i], channels[i + 1])]
    if subpixel:
        stages += [nn.Conv2d(channels[doublings - 1], 4 * outputs, 3, padding=1), nn.PixelShuffle(2)]
    else:
        stages.append(nn.Conv2d(width, outputs, 1))
    return nn.Sequential(*stages)


HEADS = ("separate", "shared")
UPSAMPLING = ("nearest", "subpixel")


class PtychoNet(nn.Module):
    def __init__(self, size: int = 64, gridsize: int = 1, width: int = 32, probe_big: bool = True,
                 heads: str = "separate", upsampling: str = "nearest"):
        super().__init__()
        if size % 8:
            raise ValueError(f"pattern size {size} must be a multiple of 8")
        if heads not in HEADS or upsampling not in UPSAMPLING:
            raise ValueError(f"heads {heads!r} / upsampling {upsampling!r}: expected one of {HEADS} / {UPSAMPLING}")
        self.size, self.gridsize, self.width, self.probe_big = size, gridsize, width, probe_big
        self.heads, self.upsampling = heads, upsampling
        self.predicted_size = size if probe_big else size // 2
        self.encoder = nn.Sequential(
            *_double_conv(1, width), nn.MaxPool2d(2),
            *_double_conv(width, 2 * width), nn.MaxPool2d(2),
            *_double_conv(2 * width, 4 * width), nn.MaxPool2d(2),
        )
        doublings, subpixel = 3 if probe_big else 2, upsampling == "subpixel"
        if heads == "shared":
            self.decoder = _decoder(width, doublings, 2, subpixel)
        else:
            self.amplitude = _decoder(width, doublings, 1, subpixel)
            self.phase = _decoder(width, doublings, 1, subpixel)
        # oneDNN's convolutions run faster on CPU in channels-last layout (measured in
        # docs/quality-experiments.md); only the order of floating-point sums changes, not the model.
        self.to(memory_format=torch.channels_last)

    def architecture(self) -> dict:
        """What rebuilds this network: the bundle's `architecture` entry, less its name."""
        return {"size": self.size, "gridsize": self.gridsize, "width": self.width, "probe_big": self.probe_big,
                "heads": self.heads, "upsampling": self.upsampling}

    def forward(self, diffraction: torch.Tensor) -> torch.Tensor:
        """(B, C, N, N) normalised amplitudes -> (B, C, N, N) complex object patches, one per pattern."""
        groups, members, size = diffraction.shape[0], diffraction.shape[1], diffraction.shape[-1]
        patterns = diffraction.reshape(groups * members, 1, size, size)
        features = self.encoder(patterns.contiguous(memory_format=torch.channels_last))
        if self.heads == "shared":
            logits = self.decoder(features)
            amplitude_logit, phase_logit = logits[:, :1], logits[:, 1:]
        else:
            amplitude_logit, phase_logit = self.amplitude(features), self.phase(features)
        amplitude = torch.sigmoid(amplitude_logit)
        phase = math.pi * torch.tanh(phase_logit)
        pad = (self.size - self.predicted_size) // 2
        if pad:
            amplitude = nn.functional.pad(amplitude, (pad, pad, pad, pad))
            phase = nn.functional.pad(phase, (pad, pad, pad, pad))
        return torch.polar(amplitude, phase).reshape(groups, members, size, size)


def prediction_window(model: PtychoNet) -> torch.Tensor:
    """(N, N) weight of each pixel of a prediction when group members are merged: the stitcher's Hann
    window over the block the network predicts, zero outside."""
    pad = (model.size - model.predicted_size) // 2
    return nn.functional.pad(torch.from_numpy(stitch_window(model.predicted_size).astype("float32")), (pad, pad, pad, pad))


def predict_patches(model: PtychoNet, inputs: torch.Tensor, offsets: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Complex object patches for a batch of groups; with gridsize > 1 the members are made consistent."""
    patches = model(inputs)
    if patches.shape[1] > 1:
        patches = merge_group(patches, offsets, window)
    return patches
