"""Generated malformed inputs (hypothesis): params files, datasets, model bundles and output targets, each
handed to the real command in process. Every one must be refused the way the README promises: exit 2, one
line on stderr naming the problem, no traceback, no allocation beyond a bound, and every watched file
(inputs, the previous output folder, the timings file) byte-identical afterwards.

The normal suite runs 200 examples; `-m slow` runs 4,600 (the counts before the fast loop was trimmed, x10).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import tracemalloc
import typing
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ptychoreg.cli import export, infer, train
from ptychoreg.core.config import Config, RUN_SECTIONS, _flag_type
from ptychoreg.core.fileio import file_digest
from ptychoreg.core.model.bundle import load_bundle
from ptychoreg.evaluation.synthetic import synthetic_arrays

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
MEMORY_BOUND_MB = 200  # what a refusal may allocate (the inputs are tiny; a blow-up is gigabytes)
RECIPE = "recipes:\n  tiny: {model: {width: 2}, train: {max_epochs: 1, batch_size: 4}}\n"


def budget(fast: int, slow: int) -> settings:
    """`fast` examples in the normal suite, `slow` under PTYCHOREG_FUZZ=slow (the slow test)."""
    return settings(FAST, max_examples=slow if os.environ.get("PTYCHOREG_FUZZ") == "slow" else fast)


def snapshot(*paths: Path) -> dict:
    out = {}
    for path in paths:
        if path.is_dir():
            out.update({str(p): file_digest(p) for p in sorted(path.rglob("*")) if p.is_file()})
            out[f"{path} listing"] = sorted(p.name for p in path.parent.iterdir())
        elif path.exists():
            out[str(path)] = file_digest(path)
    return out


def refused(main, argv: list[str], watched: list[Path]) -> str:
    """Run a command in process; assert the clean refusal; return its one line."""
    before = snapshot(*watched)
    stderr = io.StringIO()
    tracemalloc.start()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    lines = stderr.getvalue().splitlines()
    assert code == 2, (code, lines[-3:])
    assert len(lines) == 1 and ": error: " in lines[0], lines[:5]
    assert "Traceback" not in lines[0] and "out of memory" not in lines[0], lines[0]
    assert len(lines[0]) <= 600
    assert peak < MEMORY_BOUND_MB * 2**20, f"{peak / 2**20:.0f} MB allocated to refuse: {lines[0]}"
    assert snapshot(*watched) == before, lines[0]
    return lines[0]


def _train_over_previous(work: Path, data: Path, params: Path) -> list[str]:
    """ptycho-train's arguments: `data` and `params` (recipe tiny) over the previous run and timings file."""
    return ["--data", str(data), "--output-dir", str(work / "previous"), "--params", str(params), "--recipe", "tiny",
            "--timings-out", str(work / "timings.json")]


@pytest.fixture(scope="module")
def work():
    """A scratch folder with a good dataset, a good params file, a previous run's output folder and a
    trained tiny model (trained in process, once)."""
    with tempfile.TemporaryDirectory(prefix="ptycho-malformed-") as scratch:
        root = Path(scratch)
        np.savez(root / "good.npz", **synthetic_arrays(n=24, size=16))
        (root / "params.yaml").write_text(RECIPE)
        run = root / "run"
        assert train.main(["--data", str(root / "good.npz"), "--output-dir", str(run), "--params",
                           str(root / "params.yaml"), "--recipe", "tiny"]) == 0
        assert infer.main(["--model", str(run / "model.pt"), "--data", str(root / "good.npz"), "--output-dir", str(run)]) == 0
        previous = root / "previous"
        previous.mkdir()
        (previous / "model.pt").write_bytes(b"the previous run's model")
        (root / "timings.json").write_text("{}\n")
        yield root


# ---- params files ---------------------------------------------------------------------------------------

def _wrong_value(annotation):
    """A value of the wrong type (or outside the choices) for a setting: refused by the strict sections."""
    kind, choices = _flag_type(annotation)
    optional = type(None) in typing.get_args(annotation)
    none = st.nothing() if optional else st.just(None)
    if choices:
        return st.text(min_size=1, max_size=12).filter(lambda v: v not in choices) | st.lists(st.integers(), max_size=2) | none
    if kind is bool:
        return st.sampled_from([0, 1, "yes", "true", [True]]) | none
    if kind is int:
        return st.sampled_from([1.5, "3", [1], {"a": 1}, True, float("nan")]) | none
    if kind is float:
        return st.sampled_from(["0.1", [0.1], {"a": 1}, True]) | none
    return st.sampled_from([[1], {"a": 1}, 12.5])


FIELDS = [(section, name, info.annotation) for section in RUN_SECTIONS
          for name, info in typing.get_type_hints(Config)[section].model_fields.items()]


@st.composite
def bad_params(draw) -> tuple[str, bytes]:
    """(what is wrong, the file's bytes): a small valid params file with one defect guaranteed to be refused."""
    good = {"recipes": {"tiny": {"model": {"width": 2}, "train": {"max_epochs": 1}}}}
    kind = draw(st.sampled_from(["wrong value", "unknown setting", "unknown section", "null section", "null recipe",
                                 "duplicate key", "alias", "alias bomb", "syntax", "not utf-8", "not a mapping",
                                 "negative seed", "non-positive size"]))
    if kind == "wrong value":
        section, name, annotation = draw(st.sampled_from(FIELDS))
        good["recipes"]["tiny"].setdefault(section, {})[name] = draw(_wrong_value(annotation))
    elif kind == "unknown setting":
        section = draw(st.sampled_from(RUN_SECTIONS))
        good["recipes"]["tiny"].setdefault(section, {})[draw(st.text("abcxyz_", min_size=12, max_size=20))] = 1
    elif kind == "unknown section":
        good[draw(st.text("qwz_", min_size=5, max_size=10))] = {"a": 1}
    elif kind == "null section":
        good[draw(st.sampled_from(["data", "fixture", "regress", "drift", "quality"]))] = None
    elif kind == "null recipe":
        good["recipes"]["tiny"] = None
    elif kind == "negative seed":
        good["recipes"]["tiny"]["train"]["seed"] = draw(st.integers(max_value=-1) | st.integers(min_value=2**32))
    elif kind == "non-positive size":
        good["recipes"]["tiny"]["model"]["width"] = draw(st.integers(max_value=0))
    text = json.dumps(good)  # JSON is YAML
    if kind == "duplicate key":
        text = draw(st.sampled_from([text[:-1] + ', "recipes": {}}', text.replace('"width": 2', '"width": 2, "width": 3')]))
    elif kind == "alias":
        text = 'base: &b {width: 2}\nrecipes:\n  tiny: {model: *b}\n'
    elif kind == "alias bomb":
        levels = draw(st.integers(3, 12))
        lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x"]']
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 8)}]" for i in range(1, levels)]
        text = "\n".join(lines) + "\nrecipes:\n  tiny: {model: *a%d}\n" % (levels - 1)
    elif kind == "syntax":
        text = text[: draw(st.integers(1, len(text) - 1))] + draw(st.sampled_from(["[", "{", ": :", "\t- x"]))
    elif kind == "not a mapping":
        text = draw(st.sampled_from(["- 1\n- 2\n", "just text\n", "42\n"]))
    data = text.encode()
    if kind == "not utf-8":
        data = data[: draw(st.integers(0, len(data)))] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x80abc"])) + data
    return kind, data


@budget(60, slow=1500)
@given(case=bad_params())
def test_a_malformed_params_file_is_refused_cleanly(work, case):
    kind, data = case
    event(kind)
    params = work / "bad.yaml"
    params.write_bytes(data)
    line = refused(train.main, _train_over_previous(work, work / "good.npz", params),
                   [work / "good.npz", work / "previous", work / "timings.json", params])
    assert str(params) in line, (kind, line)


# ---- datasets ---------------------------------------------------------------------------------------------

def _forged_header(arrays: dict, key: str, shape: tuple) -> bytes:
    """An npz whose member `key` declares `shape` in its header but holds its real (small) data."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(array))
            raw = member.getvalue()
            if name == key:
                header = np.lib.format.header_data_from_array_1_0(np.asarray(array))
                header["shape"] = shape
                forged = io.BytesIO()
                np.lib.format.write_array_header_1_0(forged, header)
                raw = forged.getvalue() + raw[raw.index(b"\n") + 1:]
            archive.writestr(f"{name}.npy", raw)
    return buffer.getvalue()


@st.composite
def bad_dataset(draw) -> tuple[str, bytes]:
    """(what is wrong, the npz's bytes): a small valid dataset with one defect the contract or the training
    must refuse; sometimes an extra unknown key too (carried, never a reason to refuse)."""
    arrays = synthetic_arrays(n=24, size=16, seed=draw(st.integers(0, 3)))
    n = 24
    if draw(st.booleans()):
        arrays["extra_" + draw(st.text("abc", min_size=1, max_size=4))] = np.arange(3)
    kind = draw(st.sampled_from(["missing key", "integer", "complex", "float16", "non-finite", "negative", "ndim",
                                 "coords length", "probe size", "outside object", "forged size", "truncated",
                                 "damaged member", "one pattern", "frame size", "metadata", "nphotons", "no signal",
                                 "object array", "far positions"]))
    i = draw(st.integers(0, n - 1))
    if kind == "missing key":
        arrays.pop(draw(st.sampled_from(["diffraction", "probeGuess", "xcoords", "ycoords"])))
    elif kind == "integer":
        arrays["diffraction"] = arrays["diffraction"].astype(draw(st.sampled_from([np.int32, np.int64, np.uint8, bool])))
    elif kind == "complex":
        key = draw(st.sampled_from(["diffraction", "xcoords"]))
        arrays[key] = arrays[key].astype(np.complex64)
    elif kind == "float16":
        arrays["diffraction"] = arrays["diffraction"].astype(np.float16)
    elif kind == "non-finite":
        key = draw(st.sampled_from(["diffraction", "probeGuess", "xcoords", "ycoords", "objectGuess"]))
        flat = arrays[key].reshape(-1).copy()
        flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        arrays[key] = flat.reshape(arrays[key].shape)
    elif kind == "negative":
        arrays["diffraction"] = arrays["diffraction"].copy()
        arrays["diffraction"][i, draw(st.integers(0, 15)), draw(st.integers(0, 15))] = -draw(st.floats(1e-6, 1e6))
    elif kind == "ndim":
        arrays["diffraction"] = draw(st.sampled_from([arrays["diffraction"][0], arrays["diffraction"][None]]))
    elif kind == "coords length":
        key = draw(st.sampled_from(["xcoords", "ycoords"]))
        arrays[key] = arrays[key][: draw(st.integers(0, n - 1))]
    elif kind == "probe size":
        arrays["probeGuess"] = arrays["probeGuess"][: draw(st.integers(1, 15)), :]
    elif kind == "outside object":
        key = draw(st.sampled_from(["xcoords", "ycoords"]))
        arrays[key] = arrays[key].copy()
        arrays[key][i] = draw(st.sampled_from([-1.0, 1.0])) * draw(st.floats(60, 1e15))
    elif kind == "far positions":  # no object to bound them: the frame they span must fit in memory
        arrays.pop("objectGuess")
        arrays["xcoords"] = arrays["xcoords"].copy()
        arrays["xcoords"][i] = draw(st.floats(1e7, 1e15))
        arrays["ycoords"] = arrays["ycoords"].copy()
        arrays["ycoords"][i] = draw(st.floats(1e7, 1e15))
    elif kind == "one pattern":
        for key in ("diffraction", "xcoords", "ycoords"):
            arrays[key] = arrays[key][:1]
    elif kind == "frame size":
        arrays = synthetic_arrays(n=24, size=draw(st.sampled_from([12, 20])))
    elif kind == "metadata":
        arrays["metadata"] = draw(st.sampled_from([np.array(5), np.array("[1, 2]"), np.array("{bad json"),
                                                   np.array(["a", "b"])]))
    elif kind == "nphotons":
        value = draw(st.sampled_from([-1, 0, "many", [1], float("nan"), float("inf"), True]))
        arrays["metadata"] = np.array(json.dumps({"nphotons": value}))
    elif kind == "no signal":
        arrays["diffraction"] = arrays["diffraction"].copy()
        arrays["diffraction"][i] = 0
    elif kind == "object array":
        arrays["probeGuess"] = np.array([{"a": 1}], dtype=object)
    if kind == "forged size":
        key = draw(st.sampled_from(["diffraction", "xcoords", "probeGuess"]))
        shape = (draw(st.integers(10**5, 10**9)), draw(st.integers(10**4, 10**6)))
        return kind, _forged_header(arrays, key, shape)
    buffer = io.BytesIO()
    compressed = kind == "damaged member" or draw(st.booleans())
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    data = buffer.getvalue()
    if kind == "truncated":
        data = data[: draw(st.integers(1, len(data) - 1))]
    elif kind == "damaged member":  # a local file header's signature destroyed
        starts = [k for k in range(len(data) - 4) if data[k:k + 4] == b"PK\x03\x04"]
        at = draw(st.sampled_from(starts))
        data = data[:at] + b"XX\x00\x00" + data[at + 4:]
    return kind, data


@budget(80, slow=2000)
@given(case=bad_dataset())
def test_a_malformed_dataset_is_refused_cleanly(work, case):
    kind, data = case
    event(kind)
    bad = work / "bad.npz"
    bad.write_bytes(data)
    line = refused(train.main, _train_over_previous(work, bad, work / "params.yaml"),
                   [bad, work / "previous", work / "timings.json"])
    assert str(bad) in line, (kind, line)


# ---- model bundles ----------------------------------------------------------------------------------------

@st.composite
def bad_bundle(draw, good: Path) -> tuple[str, bytes]:
    payload = torch.load(good, weights_only=True)
    kind = draw(st.sampled_from(["record disagrees", "normalisation", "weights", "missing entry", "truncated",
                                 "architecture", "config type"]))
    if kind == "record disagrees":
        key, value = draw(st.sampled_from([("gridsize", 2), ("width", 3), ("heads", "shared"), ("probe_big", False)]))
        payload["config"]["model"][key] = value
    elif kind == "normalisation":
        payload[draw(st.sampled_from(["norm_factor", "intensity_scale"]))] = draw(
            st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, "1.0", None]))
    elif kind == "weights":
        name = draw(st.sampled_from(sorted(payload["state_dict"])))
        flat = payload["state_dict"][name].reshape(-1).clone()
        flat[draw(st.integers(0, flat.numel() - 1))] = draw(st.sampled_from([float("nan"), float("inf")]))
        payload["state_dict"][name] = flat.reshape(payload["state_dict"][name].shape)
    elif kind == "missing entry":
        payload.pop(draw(st.sampled_from(["state_dict", "config", "probe", "norm_factor", "architecture"])))
    elif kind == "architecture":
        payload["architecture"]["size"] = draw(st.sampled_from([12, 0, -8, "x", None]))
    elif kind == "config type":
        payload["config"] = draw(st.sampled_from([None, [1], {"train": {"neighbours": "four"}}, {"model": {"width": -2}}]))
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    if kind == "truncated":
        data = data[: draw(st.integers(1, len(data) - 1))]
    return kind, data


@budget(30, slow=800)
@given(data=st.data())
def test_a_malformed_model_bundle_is_refused_cleanly(work, data):
    kind, raw = data.draw(bad_bundle(work / "run" / "model.pt"))
    event(kind)
    bad = work / "bad.pt"
    bad.write_bytes(raw)
    line = refused(infer.main, ["--model", str(bad), "--data", str(work / "good.npz"), "--output-dir",
                                str(work / "previous"), "--timings-out", str(work / "timings.json")],
                   [bad, work / "good.npz", work / "previous", work / "timings.json"])
    assert str(bad) in line, (kind, line)


def test_the_good_bundle_still_loads(work):
    assert load_bundle(work / "run" / "model.pt").model.width == 2


# ---- output targets ---------------------------------------------------------------------------------------

@st.composite
def spelling(draw, path: Path) -> str:
    """Another way to write `path`: relative, with ./ and ../ detours, or absolute."""
    form = draw(st.sampled_from(["absolute", "relative", "dot", "detour"]))
    rel = os.path.relpath(path)
    return {"absolute": str(path.resolve()), "relative": rel, "dot": os.path.join(".", rel),
            "detour": os.path.join(os.path.dirname(rel) or ".", "..", os.path.basename(os.path.dirname(os.path.abspath(path))),
                                   os.path.basename(path))}[form]


@budget(30, slow=300)
@given(data=st.data())
def test_an_output_that_is_or_holds_an_input_is_refused(work, data):
    which = data.draw(st.sampled_from(["output is the data", "export onto its data",
                                       "export onto the model", "output is a file", "timings is a folder"]))
    event(which)
    good, run = work / "good.npz", work / "run"
    if which == "output is the data":
        main, argv = train.main, ["--data", str(good), "--output-dir", data.draw(spelling(good))]
    elif which == "export onto its data":
        main, argv = export.main, ["--run-dir", str(run), "--data", str(good), "--output", data.draw(spelling(good))]
    elif which == "export onto the model":
        main, argv = export.main, ["--run-dir", str(run), "--data", str(good), "--output", data.draw(spelling(run / "model.pt"))]
    elif which == "output is a file":
        main, argv = infer.main, ["--model", str(run / "model.pt"), "--data", str(good), "--output-dir", str(work / "timings.json")]
    else:
        main, argv = infer.main, ["--model", str(run / "model.pt"), "--data", str(good), "--output-dir",
                                  str(work / "previous"), "--timings-out", str(work / "previous")]
    refused(main, [*argv, *(["--params", str(work / "params.yaml"), "--recipe", "tiny"] if main is train.main else [])],
            [good, run, work / "previous", work / "timings.json"])


@pytest.mark.slow
def test_ten_times_the_examples(tmp_path):
    """The same properties with the slow budgets (23x the examples), in a child process (PTYCHOREG_FUZZ=slow)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", __file__],
                          env=dict(os.environ, PTYCHOREG_FUZZ="slow"), capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
