"""Inference: predict complex patches with a trained bundle and stitch them onto the object frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ptychoreg.contract import PtychoData
from ptychoreg.dataset import batches, group_tensors
from ptychoreg.errors import PtychoError
from ptychoreg.geometry import Stitched, default_canvas_shape, stitch
from ptychoreg.grouping import make_groups
from ptychoreg.model.bundle import Bundle
from ptychoreg.model.network import predict_patches, prediction_window


@dataclass(frozen=True)
class Reconstruction:
    stitched: Stitched
    positions: np.ndarray  # indices of the patterns whose patches were stitched, scan order


def reconstruct(bundle: Bundle, data: PtychoData, n_groups: int | None = None, batch_size: int = 64) -> Reconstruction:
    """Predict the first `n_groups` positions in scan order (all when None) and stitch them.

    With gridsize > 1 each position seeds a group of its nearest neighbours; the seed's patch, made
    consistent with its neighbours, is the one stitched.
    """
    model = bundle.model
    size = model.size
    if data.frame_shape != (size, size):
        raise PtychoError(data.path, f"frames {data.frame_shape} do not match the model's {size}x{size}", key="diffraction")
    groups = make_groups(
        data.ycoords, data.xcoords, model.gridsize, n_groups,
        neighbours=int(bundle.config["train"]["neighbours"]), sampling="sequential", max_offset=size / 2,
    )
    device = bundle.probe.device
    tensors = group_tensors(data.diffraction, groups, bundle.norm_factor).to(device)
    window = prediction_window(model).to(device)
    patches = []
    with torch.inference_mode():
        for batch in batches(tensors, batch_size):
            patches.append(predict_patches(model, batch.inputs, batch.offsets, window)[:, 0].cpu())
    seeds = groups.indices[:, 0]
    canvas = data.object.shape if data.object is not None else default_canvas_shape(data.ycoords, data.xcoords, size)
    try:
        stitched = stitch(torch.cat(patches).numpy(), data.ycoords[seeds], data.xcoords[seeds], canvas, trusted=size // 2)
    except PtychoError as exc:
        raise PtychoError(data.path, exc.problem, key="xcoords/ycoords") from None
    return Reconstruction(stitched, seeds)


def save_reconstruction(out: Path, result: Reconstruction, data: PtychoData, provenance: dict) -> dict:
    """Write reconstruction.npz, amplitude.png, phase.png, quality.json (with ground truth) and
    summary.json into `out`; return the summary (quality figures included when there are any)."""
    from ptychoreg.fileio import sha256_array, write_json, write_npz
    from ptychoreg.plots import object_panels_png
    from ptychoreg.quality import quality_report, remove_global_phase

    obj, mask = result.stitched.object, result.stitched.mask
    write_npz(out / "reconstruction.npz", {"object": obj, "mask": mask, "positions": result.positions})
    summary = {
        **provenance,
        "positions": int(len(result.positions)),
        "object_shape": list(obj.shape),
        "scanned_fraction": float(mask.mean()),
        "stitched_sha256": sha256_array(obj),
    }
    amplitude, phase = np.abs(obj), np.angle(obj)
    amp_panels, phase_panels = [("reconstruction amplitude", amplitude)], [("reconstruction phase", phase)]
    amp_scale, phase_scale = amplitude, phase
    if data.object is not None:
        summary["quality"] = quality_report(obj, data.object, mask)
        write_json(out / "quality.json", summary["quality"])
        aligned, _ = remove_global_phase(obj.astype(np.complex128), data.object, mask)
        amp_scale, phase_scale = np.abs(data.object), np.angle(data.object)
        amp_panels.append(("true amplitude", amp_scale))
        phase_panels = [("reconstruction phase (offset removed)", np.angle(aligned)), ("true phase", phase_scale)]
    # One colour scale per figure, from the truth when there is one, over the scanned region.
    object_panels_png(out / "amplitude.png", amp_panels, mask, float(amp_scale[mask].min()), float(amp_scale[mask].max()))
    object_panels_png(out / "phase.png", phase_panels, mask, float(phase_scale[mask].min()), float(phase_scale[mask].max()),
                      colourmap="viridis")
    write_json(out / "summary.json", {k: v for k, v in summary.items() if k != "quality"})
    return summary
