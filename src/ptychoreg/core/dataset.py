"""From a validated dataset to float32 tensors of groups: scales, normalisation, batching.

Everything that enters the model passes through `group_tensors`, which casts to float32 explicitly
(float64 never leaks into the model path) and gathers all groups at once (no per-pattern Python loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ptychoreg.core.contract import PtychoData
from ptychoreg.core.grouping import Groups


def target_energy(size: int) -> float:
    """Mean per-pattern energy (sum of amplitude^2) that network inputs are normalised to: (N/2)^2."""
    return (size / 2) ** 2


def normalisation_factor(diffraction: np.ndarray) -> float:
    """Factor that brings the mean per-pattern energy of `diffraction` to `target_energy`."""
    energy = float(np.square(diffraction, dtype=np.float64).sum(axis=(1, 2)).mean())
    if not energy > 0:
        raise ValueError("diffraction has no energy; cannot normalise")
    return math.sqrt(target_energy(diffraction.shape[-1]) / energy)


@dataclass(frozen=True)
class IntensityScale:
    value: float  # s: photon counts = (amplitude * s)^2
    nphotons: float  # photons per pattern implied by s
    source: str  # where the number came from, in words


def intensity_scale(data: PtychoData) -> IntensityScale:
    """s = sqrt(nphotons) / (N/2), from metadata when it says, else estimated (and said so)."""
    half = data.frame_shape[0] / 2
    nphotons = data.metadata.get("nphotons")
    if isinstance(nphotons, (int, float)) and not isinstance(nphotons, bool) and nphotons > 0:
        return IntensityScale(math.sqrt(nphotons) / half, float(nphotons), "metadata nphotons")
    # Counts are integers, so the smallest non-zero amplitude is one photon: s = 1 / that amplitude.
    positive = data.diffraction[data.diffraction > 0]
    value = 1.0 / float(positive.min()) if positive.size else 1.0
    return IntensityScale(value, (value * half) ** 2, "estimated from the smallest non-zero amplitude (one photon)")


@dataclass(frozen=True)
class GroupTensors:
    inputs: torch.Tensor  # (G, C, N, N) float32: normalised amplitudes, the network input
    measured: torch.Tensor  # (G, C, N, N) float32: amplitudes in the data's scale, the loss target
    offsets: torch.Tensor  # (G, C, 2) float32: member offsets from the group centre, pixels

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def subset(self, index: torch.Tensor) -> "GroupTensors":
        return GroupTensors(self.inputs[index], self.measured[index], self.offsets[index])

    def to(self, device: torch.device) -> "GroupTensors":
        return GroupTensors(self.inputs.to(device), self.measured.to(device), self.offsets.to(device))


def group_tensors(diffraction: np.ndarray, groups: Groups, norm_factor: float) -> GroupTensors:
    measured = torch.from_numpy(np.asarray(diffraction, dtype=np.float32)[groups.indices])
    return GroupTensors(
        inputs=measured * np.float32(norm_factor),
        measured=measured,
        offsets=torch.from_numpy(groups.offsets.astype(np.float32)),
    )


def batches(tensors: GroupTensors, batch_size: int, generator: torch.Generator | None = None) -> Iterator[GroupTensors]:
    """Mini-batches in a seeded random order (`generator`), or in order when it is None."""
    count = len(tensors)
    order = torch.randperm(count, generator=generator) if generator is not None else torch.arange(count)
    for start in range(0, count, batch_size):
        yield tensors.subset(order[start : start + batch_size])
