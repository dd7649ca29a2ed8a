"""Reports rendered from metrics: the time breakdown and the classical reference beside the PINN."""

from __future__ import annotations

from ptychoreg.harness.reports import breakdown_table, budget_section, reference_section, runtime_saving


def _figures(a, p):
    return {"amplitude": {"ssim": a, "correlation": a}, "phase": {"ssim": p, "correlation": p}, "frc_mean": 0.5}


def test_breakdown_table_sums_each_command():
    regression = {"torch_import_s": 1.1,
                  "breakdown": {"train": {"interpreter start": 0.05, "training": 1.0, "exit and module imports": 0.2},
                                "infer": {"interpreter start": 0.05, "inference and stitching": 0.5}}}
    text = "\n".join(breakdown_table(regression))
    assert "| train | training | 1.000 |" in text and "| train | **total** | **1.250** |" in text
    assert "| infer | **total** | **0.550** |" in text and "1.10 s" in text
    assert breakdown_table({}) == []


def test_reference_section_sets_the_pinn_beside_epie():
    quality = {"quality": _figures(0.5, 0.6), "timing": {"infer_s": 6.0, "train_s": 290.0}, "patterns": 1087}
    reference = {"quality": _figures(0.97, 0.97), "timing": {"seconds": 10.5}, "method": "ePIE, known probe and positions",
                 "settings": {"epochs": 30, "threads": 1}}
    text = "\n".join(reference_section(quality, reference))
    assert "| amplitude SSIM | 0.5000 | 0.9700 |" in text
    assert "| seconds for the 1087 patterns | inference 6.0 (after 290 s training) | 10.5 |" in text


def test_runtime_saving_against_the_largest_cell():
    regression = {"total_s": {"median": 5.0}, "settings": {"repeats": 5, "train": {"max_epochs": 2}}}
    cells = [{"n_images": 16, "max_epochs": 1, "total_s": {"median": 4.0}},
             {"n_images": 1087, "max_epochs": 2, "total_s": {"median": 30.0}},
             {"n_images": 1087, "max_epochs": 1, "total_s": {"median": 20.0}}]
    saving = runtime_saving(regression, cells)
    assert (saving["full_images"], saving["full_epochs"], saving["factor"]) == (1087, 1, 4.0)
    assert runtime_saving(regression, []) is None


def test_budget_section_lists_each_budget_with_its_epochs_seconds_and_figures():
    curve = {"points": [{"scale": 0.5, "epochs": [17, 2], "train_s": 131.4, "amplitude_ssim": 0.6512, "phase_ssim": 0.7001},
                        {"scale": 2.0, "epochs": [68, 8], "train_s": 530.0, "amplitude_ssim": 0.80049, "phase_ssim": 0.86}]}
    text = "\n".join(budget_section(curve))
    assert "| x0.5 | 17 + 2 | 131 | 0.651 | 0.700 |" in text
    assert "| x2 | 68 + 8 | 530 | 0.800 | 0.860 |" in text
