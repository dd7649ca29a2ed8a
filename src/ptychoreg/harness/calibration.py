"""A fixed calibration workload, timed beside the regression so runtimes compare across machines.

`python -m ptychoreg.harness.calibration` starts an interpreter, imports torch and runs a fixed amount of
the regression's kind of work (small 2-D convolutions forward and backward, 2-D FFTs, an Adam step) on
one thread, seeded. It never changes: regression seconds divided by its seconds, timed in the same
stage on the same machine, is a machine-normalised runtime that `dvc metrics diff` can compare between
a fast and a slow CPU. (It is a yardstick, not a gate: the gate times two revisions side by side.)
"""

from __future__ import annotations

STEPS = 10


def workload(steps: int = STEPS) -> float:
    import torch  # this module is an entry: torch loads after `setup_process`

    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 2, 3, padding=1),
    )
    optimiser = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.rand(16, 1, 64, 64)
    total = 0.0
    for _ in range(steps):
        out = net(x)
        far = torch.fft.fft2(torch.complex(out[:, 0], out[:, 1]), norm="ortho").abs()
        loss = (far - x[:, 0]).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item()
    return total


if __name__ == "__main__":
    from ptychoreg.core.cli import setup_process

    setup_process()
    print(f"calibration loss sum {workload():.6g}")
