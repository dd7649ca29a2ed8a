"""The page `dvc plots show` writes (.dvc/plots/page.html, the project's html_template) opens without a
network: vega, vega-lite and vega-embed are inlined, and every vega plot renders in headless Chromium with
every request outside the machine refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "needs Debian's chromium (apt-get install chromium; .ci/run installs it)"
    return found


def test_the_plots_page_renders_every_vega_plot_offline(tmp_path):
    out = tmp_path / "plots"
    subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--out", str(out)], cwd=ROOT, check=True,
                   capture_output=True, env=dict(os.environ, DVC_NO_ANALYTICS="1"), stdin=subprocess.DEVNULL)
    page = (out / "index.html").read_text()
    assert "<script src=" not in page  # nothing fetched: the libraries are in the page
    plots = page.count("vegaEmbed('#")
    assert plots >= 4  # the loss curves, the quality budget curve, the runtime history
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
         "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=20000", "--dump-dom", (out / "index.html").as_uri()],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # vega-embed draws each plot into a canvas of class "marks" inside the plot's div.
    assert dom.stdout.count('class="marks"') == plots, dom.stdout[:2000]
