"""Runtime sensitivity: how wall time and artifact sizes scale with epochs and images.

A grid max_epochs x n_images of real train + infer runs on the canonical dataset, CPU only; dvc.yaml's
`sensitivity` stage is a DVC matrix, one cached cell per combination. The largest n_images (every
pattern) is what the fixture saves us from.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ptychoreg.core.config import SensitivitySettings
from ptychoreg.harness.runner import RecipeRun, dir_bytes
from ptychoreg.harness.timing import Side, measure, summary


def run_cell(data: str, epochs: int, n_images: int, settings: SensitivitySettings, run: RecipeRun) -> dict:
    """One cell of the grid: `settings.repeats` timed train + infer runs of `run` (the sensitivity recipe)
    for `epochs` on the first `n_images` patterns (the cell's axes, as flags over the recipe)."""
    side = Side("cell", train_args=("--max-epochs", str(epochs), "--n-groups", str(n_images)),
                infer_args=("--n-groups", str(n_images)))
    records, sizes, hashes = [], {}, set()
    with tempfile.TemporaryDirectory(prefix="ptycho-sensitivity-") as tmp:
        for repeat in range(settings.repeats):
            out = Path(tmp) / f"r{repeat}"
            records.append(measure(side, data, run, out))
            sizes = {
                "bundle_bytes": (out / "model.pt").stat().st_size,
                "reconstruction_bytes": (out / "reconstruction.npz").stat().st_size,
                "total_bytes": dir_bytes(out),
            }
            hashes.add(json.loads((out / "summary.json").read_text())["stitched_sha256"])
            shutil.rmtree(out)
    return {
        "max_epochs": epochs,
        "n_images": n_images,
        "settings": {"repeats": settings.repeats, "recipe": run.recipe, "width": run.config.model.width,
                     "threads": run.config.train.threads, **run.config.model_dump()},
        **summary(records),  # train_s, infer_s, total_s, their CPU seconds and peak memory (harness.timing)
        "artifacts": sizes,
        # Same bytes on every repeat here (never compared across machines: float output differs by CPU).
        "deterministic": len(hashes) == 1,
    }


def read_cells(folder: str | Path) -> list[dict]:
    """Every cell's metrics in `folder`, ordered by epochs then images."""
    cells = [json.loads(p.read_text()) for p in Path(folder).glob("*.json")]
    return sorted(cells, key=lambda c: (c["max_epochs"], c["n_images"]))


def sensitivity_table(cells: list[dict]) -> str:
    lines = [
        "| max_epochs | n_images | train s | infer s | total s (median, min-max) | peak MB train / infer | bundle bytes | reconstruction bytes | all artifacts |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cell in cells:
        t = cell["total_s"]
        a = cell["artifacts"]
        lines.append(
            f"| {cell['max_epochs']} | {cell['n_images']} | {cell['train_s']['median']:.2f} | {cell['infer_s']['median']:.2f} "
            f"| {t['median']:.2f} ({t['min']:.2f}-{t['max']:.2f}) "
            f"| {cell['train_rss_mb']['median']:.0f} / {cell['infer_rss_mb']['median']:.0f} | {a['bundle_bytes']:,} | {a['reconstruction_bytes']:,} "
            f"| {a['total_bytes']:,} |"
        )
    return "\n".join(lines) + "\n"
