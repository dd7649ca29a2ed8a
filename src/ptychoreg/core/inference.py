"""Inference: predict complex patches with a trained bundle and stitch them onto the object frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ptychoreg.core.contract import PtychoData
from ptychoreg.core.dataset import batches, group_tensors
from ptychoreg.core.errors import PtychoError
from ptychoreg.core.fileio import path_from, sha256_array, write_json, write_npz
from ptychoreg.core.geometry import Stitched, default_canvas_shape, stitch
from ptychoreg.core.grouping import make_groups
from ptychoreg.core.model.bundle import Bundle, load_bundle
from ptychoreg.core.model.network import predict_patches, prediction_window
from ptychoreg.core.training import configure_runtime, select_device


@dataclass(frozen=True)
class Reconstruction:
    stitched: Stitched
    positions: np.ndarray  # indices of the patterns whose patches were stitched, scan order


def reconstruct(bundle: Bundle, data: PtychoData, n_groups: int | None = None, batch_size: int = 64,
                gridsize: int | None = None) -> Reconstruction:
    """Predict the first `n_groups` positions in scan order (all when None) and stitch them.

    With gridsize > 1 (None: the model's) each position seeds a group of its nearest neighbours; the
    seed's patch, made consistent with its neighbours, is the one stitched. The network is the same at
    every gridsize, so a model trained on groups can also predict each pattern alone (gridsize 1).
    """
    model = bundle.model
    size = model.size
    if data.frame_shape != (size, size):
        raise PtychoError(data.path, f"frames {data.frame_shape} do not match the model's {size}x{size}", key="diffraction")
    groups = make_groups(
        data.ycoords, data.xcoords, model.gridsize if gridsize is None else gridsize, n_groups,
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


Score = Callable[[np.ndarray, np.ndarray, np.ndarray], dict]  # (object, ground truth, mask) -> figures
# What inference may write into its output folder (quality.json only when scored against ground truth).
OUTPUT_FILES = ("reconstruction.npz", "summary.json", "quality.json")


def save_reconstruction(out: Path, result: Reconstruction, data: PtychoData, provenance: dict,
                        score: Score | None = None) -> dict:
    """Write reconstruction.npz, summary.json and, given `score` and ground truth, quality.json into `out`;
    return the summary (quality figures included when there are any). The scoring is the caller's
    (ptychoreg.evaluation.quality.quality_report): the workflow does not judge itself. Figures: ptycho-plots."""
    obj, mask = result.stitched.object, result.stitched.mask
    write_npz(out / "reconstruction.npz", {"object": obj, "mask": mask, "positions": result.positions})
    summary = {
        **provenance,
        "positions": int(len(result.positions)),
        "object_shape": list(obj.shape),
        "scanned_fraction": float(mask.mean()),
        "stitched_sha256": sha256_array(obj),
    }
    if score is not None and data.object is not None:
        summary["quality"] = score(obj, data.object, mask)
        write_json(out / "quality.json", summary["quality"])
    write_json(out / "summary.json", {k: v for k, v in summary.items() if k != "quality"})
    return summary


def infer_to(out: Path, model_path: str | Path, data: PtychoData, config, seen_from: Path | None = None,
             score: Score | None = None) -> dict:
    """The whole of ptycho-infer as a library call: load the bundle `model_path` on `config`'s device
    (an InferConfig), reconstruct `data`, write reconstruction.npz, summary.json (and, with `score`,
    quality.json) into `out` (a staging folder for `seen_from`); return the summary."""
    device = select_device(config.accelerator)
    configure_runtime(0, config.threads, device, deterministic=False)
    bundle = load_bundle(model_path, device)
    result = reconstruct(bundle, data, n_groups=config.n_groups, batch_size=config.batch_size, gridsize=config.gridsize)
    # The model as seen from the output folder: the same bytes wherever the run was staged.
    return save_reconstruction(Path(out), result, data, {"model": path_from(seen_from or out, model_path),
                                                        "data": str(data.path), "device": str(device)}, score)
