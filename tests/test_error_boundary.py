"""core.cli's error boundary and core.fileio's staged outputs: one regression test per class of failure a
user met (tests/test_malformed.py generates the inputs; these pin each class down by name)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ptychoreg.cli import export, infer, train
from ptychoreg.core.cli import run
from ptychoreg.core.fileio import file_digest
from ptychoreg.evaluation.synthetic import synthetic_arrays

TINY = ["--max-epochs", "1", "--width", "2"]


def _folder(path: Path) -> dict:
    return {p.name: file_digest(p) for p in sorted(path.iterdir())}


@pytest.fixture
def trained(tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, **synthetic_arrays(n=24, size=16))
    run_dir = tmp_path / "run"
    assert train.main(["--data", str(data), "--output-dir", str(run_dir), *TINY]) == 0
    assert infer.main(["--model", str(run_dir / "model.pt"), "--data", str(data), "--output-dir", str(run_dir)]) == 0
    return data, run_dir


def test_an_internal_error_is_one_line_naming_its_traceback_file(capsys, monkeypatch):
    def broken(argv):
        return {}["missing"]

    assert run("ptycho-x", broken, []) == 1
    line, = capsys.readouterr().err.splitlines()
    assert line.startswith("ptycho-x: internal error (a bug, please report it): KeyError: 'missing'; full traceback in ")
    traceback_file = Path(line.rsplit(" ", 1)[1])
    assert "Traceback" in traceback_file.read_text() and "broken" in traceback_file.read_text()
    monkeypatch.setenv("PTYCHOREG_DEBUG", "1")
    assert run("ptycho-x", broken, []) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_a_long_message_stays_one_bounded_line(capsys):
    from ptychoreg.core.errors import PtychoError

    def refuse(argv):
        raise PtychoError("f.npz", "x\n" * 10_000, key="k")

    assert run("ptycho-x", refuse, []) == 2
    line, = capsys.readouterr().err.splitlines()
    assert len(line) <= 420


def test_a_bad_flag_value_is_one_line_not_the_usage():
    proc = subprocess.run([sys.executable, "-m", "ptychoreg.cli.train", "--data", "x.npz", "--output-dir", "o",
                           "--gridsize", "7"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["ptycho-train: error: argument --gridsize: invalid choice: 7 (choose from 1, 2, 3) "
                                        "(see ptycho-train --help)"]


def test_a_failure_during_inference_leaves_the_run_folder_as_it_was(trained, monkeypatch, capsys):
    """Scoring fails after the reconstruction was written: nothing of this run reaches the folder."""
    data, run_dir = trained
    before = _folder(run_dir)
    import ptychoreg.evaluation.quality as quality

    def broken(*args, **kwargs):
        raise RuntimeError("scoring broke")

    monkeypatch.setattr(quality, "quality_report", broken)
    assert infer.main(["--model", str(run_dir / "model.pt"), "--data", str(data), "--output-dir", str(run_dir)]) == 1
    assert _folder(run_dir) == before
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".run.")]  # no staging left behind


def test_an_unwritable_timings_file_is_refused_before_training(trained, capsys):
    data, run_dir = trained
    before = _folder(run_dir)
    blocked = run_dir / "history.json" / "timings.json"  # its folder is a file
    assert train.main(["--data", str(data), "--output-dir", str(run_dir), *TINY, "--timings-out", str(blocked)]) == 2
    err = capsys.readouterr()
    assert "epoch" not in err.out and str(blocked) in err.err
    assert _folder(run_dir) == before


def test_a_new_run_replaces_exactly_its_own_files(trained, tmp_path):
    """Inference without a true object writes no quality.json: the previous run's one goes with its run."""
    data, run_dir = trained
    assert (run_dir / "quality.json").is_file()
    arrays = synthetic_arrays(n=24, size=16)
    del arrays["objectGuess"]
    bare = tmp_path / "bare.npz"
    np.savez(bare, **arrays)
    assert infer.main(["--model", str(run_dir / "model.pt"), "--data", str(bare), "--output-dir", str(run_dir)]) == 0
    assert not (run_dir / "quality.json").exists() and (run_dir / "model.pt").is_file()


def test_export_onto_its_own_dataset_is_refused(trained, capsys):
    data, run_dir = trained
    digest = file_digest(data)
    assert export.main(["--run-dir", str(run_dir), "--data", str(data), "--output", str(data)]) == 2
    assert "is the input" in capsys.readouterr().err and file_digest(data) == digest


def test_export_refuses_a_negative_pixel_size_and_a_damaged_history(trained, tmp_path, capsys):
    data, run_dir = trained
    out = tmp_path / "product.npz"
    assert export.main(["--run-dir", str(run_dir), "--data", str(data), "--output", str(out), "--pixel-size-m=-1e-8"]) == 2
    assert "--pixel-size-m must be a finite number > 0" in capsys.readouterr().err
    (run_dir / "history.json").write_text('{"epochs": [{"train_loss": NaN}]}')
    assert export.main(["--run-dir", str(run_dir), "--data", str(data), "--output", str(out)]) == 2
    assert "history.json: key 'epochs': epoch 1 has no finite train_loss" in capsys.readouterr().err
    assert not out.exists()


def test_the_outputs_command_outside_a_repository_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ptychoreg.cli.outputs", "check"], cwd=tmp_path, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src")))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [line for line in proc.stderr.splitlines() if "not a usable DVC repository" in line]
    assert len(proc.stderr.splitlines()) == 1


def test_a_staged_run_records_paths_as_seen_from_its_own_folder(trained):
    """Inferring into the model's own folder records `model.pt`, not the staging folder's view of it."""
    import json

    data, run_dir = trained
    assert json.loads((run_dir / "summary.json").read_text())["model"] == "model.pt"
    refined = run_dir.parent / "refined"
    assert train.main(["--data", str(data), "--output-dir", str(refined), *TINY, "--init-model", str(run_dir / "model.pt")]) == 0
    import torch

    init = torch.load(refined / "model.pt", weights_only=True)["training"]["init_model"]
    assert init["path"] == os.path.join("..", "run", "model.pt")
