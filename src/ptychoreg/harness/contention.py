"""Speed on a shared machine: each recipe's epoch time with the machine to itself and beside one busy
competitor (a plain CPU-bound process this benchmark starts and stops), under each OpenMP wait policy
compared, interleaved; medians of repeats with their spread.

`python -m ptychoreg.harness.contention` (`./tasks contention`) -> metrics/contention.json (host
measurements) and reports/contention.png.

Why the wait policy: torch's CPU kernels and MKL run on GNU OpenMP (libgomp), whose threads spin at each
barrier before they sleep. Its default spin is 300,000 `pause` iterations (libgomp's comment reckons 3 ms);
a `pause` takes ~140 cycles on Intel CPUs since Skylake, so there a wait spins ~15 ms. With two threads
on two cores and a third busy process, one thread of each parallel region is often descheduled, and its
partner spins through the rest of its time slice instead of yielding the core to it: every one of the
thousands of small parallel regions of an epoch can cost a time slice. A passive policy sleeps at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ptychoreg.core.cli import PROJECT_PARAMS, ArgumentParser, entry_points
from ptychoreg.harness.load import observe
from ptychoreg.harness.runner import RecipeRun, project_data, run_train
from ptychoreg.harness.timing import spread

# libgomp's own default spin, written out: the "before" side whatever OMP_WAIT_POLICY says.
DEFAULT_SPIN = {"GOMP_SPINCOUNT": "300000"}  # libgomp reads it before OMP_WAIT_POLICY
POLICIES = {"spin (OpenMP default)": DEFAULT_SPIN, "passive (ours)": {}}

_COMPETITOR = "import sys\nsys.stdout.write('ready\\n')\nsys.stdout.flush()\nwhile True:\n    pass\n"


class Competitor:
    """One CPU-bound process, running from `__enter__` (it has said so) to `__exit__`."""

    def __enter__(self) -> "Competitor":
        self.proc = subprocess.Popen([sys.executable, "-c", _COMPETITOR], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        if self.proc.stdout.readline() != b"ready\n":
            raise RuntimeError("the competitor process did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def epoch_seconds(data: str, run: RecipeRun, epochs: int, n_groups: int | None, env: dict, work: Path,
                  busy: bool) -> tuple[float, dict]:
    """Median seconds of an epoch after the first (which warms caches up), and the machine's other load."""
    extra = ["--max-epochs", str(epochs), *(["--n-groups", str(n_groups)] if n_groups else [])]
    with Competitor() if busy else contextlib.nullcontext(), observe() as load:
        record = run_train(data, work, run, extra, env=env, logs=work)
    epochs_s = json.loads(record.timings.read_text())["epoch_seconds"]
    return statistics.median(epochs_s[1:] or epochs_s), load.record()


def measure(cases: list[tuple[str, str, RecipeRun, int, int | None]], repeats: int, work: Path,
            log=print) -> dict:
    """For each (label, data, run, epochs, n_groups) case, each policy, idle and busy: `repeats` runs,
    the policies' order rotating each repeat."""
    result = {}
    policies = list(POLICIES.items())
    for label, data, run, epochs, n_groups in cases:
        seconds = {name: {"idle": [], "busy": []} for name in POLICIES}
        loads = {name: {"idle": [], "busy": []} for name in POLICIES}
        for i in range(repeats):
            for name, env in policies[i % len(policies):] + policies[: i % len(policies)]:
                for state in ("idle", "busy"):
                    s, load = epoch_seconds(data, run, epochs, n_groups, env, work / f"{label}-{i}-{state}", state == "busy")
                    seconds[name][state].append(s)
                    loads[name][state].append(load)
                log(f"{label} {i + 1}/{repeats} {name}: idle {seconds[name]['idle'][-1]:.2f} s, "
                    f"busy {seconds[name]['busy'][-1]:.2f} s per epoch")
        result[label] = {
            "recipe": run.recipe, "data": Path(data).name, "threads": run.config.train.threads, "epochs": epochs,
            "n_groups": n_groups or run.config.train.n_groups,
            "policies": {name: {
                "idle_s": spread(s["idle"]), "busy_s": spread(s["busy"]),
                "busy_over_idle": spread([b / a for a, b in zip(s["idle"], s["busy"])]),
                "idle_others_share_max": max(l["others_share"] or 0 for l in loads[name]["idle"]),
            } for name, s in seconds.items()},
        }
    return result


def machine() -> dict:
    """Which machine the figures come from: its CPU model and count (host measurements)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count()}


def plot(result: dict, path: Path) -> None:
    import matplotlib  # with numpy: this module is an entry, set up first

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(result)
    names = list(POLICIES)
    fig, ax = plt.subplots(figsize=(1.8 + 1.9 * len(labels), 4))
    width = 0.8 / (2 * len(names))
    for j, name in enumerate(names):
        for k, state in enumerate(("idle", "busy")):
            x = [i + (2 * j + k - len(names) + 0.5) * width for i in range(len(labels))]
            med = [result[l]["policies"][name][f"{state}_s"]["median"] for l in labels]
            low = [m - result[l]["policies"][name][f"{state}_s"]["min"] for l, m in zip(labels, med)]
            high = [result[l]["policies"][name][f"{state}_s"]["max"] - m for l, m in zip(labels, med)]
            ax.bar(x, med, width, yerr=[low, high], capsize=2, label=f"{name}, {state}",
                   color=("#9ecae1", "#08519c", "#fdae6b", "#a63603")[2 * j + k])
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("seconds per epoch (median, min-max)")
    ax.set_title("Epoch time alone and beside one busy process (2 threads)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _main(argv: list[str] | None) -> int:
    p = ArgumentParser(prog="python -m ptychoreg.harness.contention", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default=PROJECT_PARAMS)
    p.add_argument("--fixture", help="default: the params file's fixture.output")
    p.add_argument("--data", help="default: the params file's data.canonical")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="metrics/contention.json")
    p.add_argument("--plot", default="reports/contention.png")
    args = p.parse_args(argv)
    from ptychoreg.core.fileio import write_json  # numpy: this module is an entry, set up first

    fixture, canonical = project_data(args.params)
    fixture, canonical = args.fixture or fixture, args.data or canonical
    run = lambda recipe: RecipeRun.of(args.params, recipe)  # noqa: E731
    # (label, data, recipe, epochs, groups): the fixture's recipes whole; the canonical data's on 256
    # groups, so a refinement epoch takes seconds, not 18 (the ratio is what counts).
    cases = [("regression", fixture, run("regression"), 4, None),
             ("sensitivity", fixture, run("sensitivity"), 4, None),
             ("quality_pretrain", canonical, run("quality_pretrain"), 3, 512),
             ("quality_refine", canonical, run("quality_refine"), 3, 128)]
    with tempfile.TemporaryDirectory(prefix="ptycho-contention-") as work:
        result = measure(cases, args.repeats, Path(work))
    write_json(args.out, {"machine": machine(), "repeats": args.repeats, "cases": result})
    plot(result, Path(args.plot))
    for label, case in result.items():
        for name, r in case["policies"].items():
            print(f"{label:17} {name:22} idle {r['idle_s']['median']:.3f} s  busy {r['busy_s']['median']:.3f} s  "
                  f"x{r['busy_over_idle']['median']:.2f}")
    return 0


main, cli = entry_points("python -m ptychoreg.harness.contention", _main)


if __name__ == "__main__":
    cli()
