"""The documentation builds strictly, its links resolve, and its figures are the ones the code writes.

Every generated figure a page quotes is registered below with the file (or the computation) it
comes from: the page must contain the figure exactly as formatted from that source, so editing a
figure in a page, or regenerating the file without updating the page, fails here.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from benchmarks.spaces_smoke import markdown as spaces_markdown

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
CONTROL = ROOT / "benchmarks" / "results" / "positive_control" / "positive_control.json"
PROFILE = ROOT / "benchmarks" / "results" / "demo_trial_profile.json"
POWER_CHECK = ROOT / "benchmarks" / "results" / "power_check.json"
SPACES = ROOT / "benchmarks" / "results" / "spaces_smoke.json"


@dataclass(frozen=True)
class Figure:
    """``template`` filled with ``values(source data)`` must appear verbatim in ``page``."""
    page: str
    template: str
    source: Path
    values: Callable[[Any], tuple]

    def expected(self) -> str:
        return self.template.format(*self.values(json.loads(self.source.read_text())))


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _ci(d: dict) -> tuple:
    return (d["mean"], *d["ci"], d["defined"], d["of"])


def _regs(model: str) -> Callable[[dict], tuple]:
    def values(d: dict) -> tuple:
        r = next(r for r in d["regularizers_on_off"] if r["model"] == model)
        off = r["step_s"]["off"]
        return (r["ratio_on_over_off"]["crossfit"], r["ratio_on_over_off"]["adversarial"], off,
                r["term_s"]["crossfit"], r["term_s"]["adversarial"],
                r["term_s"]["crossfit"] / off, r["term_s"]["adversarial"] / off)
    return values


def _dhic(d: dict) -> dict:
    return d["models"]["DHIC_Tiny"]


RESULTS_PAGE = "docs/results.md"
FIGURES = [
    Figure(RESULTS_PAGE, "`benchmarks/results.json` ({}; {})", RESULTS, lambda d: (d["date"], d["machine"])),
    Figure(RESULTS_PAGE, "| official / ours, HPCM_Base training step | **{:.2f}x** (official {:.2f} s, ours {:.2f} s; "
                         "official with channels-last weights {:.2f}x) | ≥ 1.0 |", RESULTS,
           lambda d: (d["ours_vs_official"]["speedup_official_over_ours"], d["ours_vs_official"]["step_s"]["official"],
                      d["ours_vs_official"]["step_s"]["ours"],
                      d["ours_vs_official"]["speedup_official_channels_last_over_ours"])),
    Figure(RESULTS_PAGE, "| parity at identical weights, max abs Δ (eval / training) | x_hat {:.1e} / {:.1e}, "
                         "y {:.1e} / {:.1e}, z {:.1e} / {:.1e} | ≤ 1e-4 |", RESULTS,
           lambda d: tuple(d["ours_vs_official"][f"parity_{mode}_max_abs"][k]
                           for k in ("x_hat", "y", "z") for mode in ("eval", "train"))),
    Figure(RESULTS_PAGE, "| regularizers on / off, whole step, HPCM_Base, `crossfit` / `adversarial` | {:.3f} / {:.3f} "
                         "(off {:.2f} s; the Phase 2 term alone {:.3f} / {:.3f} s, {:.1%} / {:.1%} of the off step) "
                         "| ≤ 1.02 |", RESULTS, _regs("HPCM_Base")),
    Figure(RESULTS_PAGE, "| same, HPCM_Tiny | {:.3f} / {:.3f} (off {:.3f} s; the Phase 2 term alone {:.4f} / {:.4f} s, "
                         "{:.1%} / {:.1%} of the off step) | — |", RESULTS, _regs("HPCM_Tiny")),
    Figure(RESULTS_PAGE, "| Tune trial time / plain `train_curve()` (one configuration at {} λ, {} epochs, HPCM_Tiny) "
                         "| {:.3f} | ≤ 1.05 |", RESULTS,
           lambda d: (len(d["tune_vs_plain"]["lambdas"]), d["tune_vs_plain"]["epochs"],
                      d["tune_vs_plain"]["ratio_trial_over_plain"])),
    Figure(RESULTS_PAGE, "| Tune `fit()` wall time incl. worker start-up / plain | {:.3f} (plain {:.1f} s) | — |", RESULTS,
           lambda d: (d["tune_vs_plain"]["ratio_fit_over_plain"], d["tune_vs_plain"]["plain_s"])),
    Figure(RESULTS_PAGE, "| ASHA / FIFO epochs spent, `{}` ({} configurations, {} λ, {} epochs × {} steps) | {:.3f} "
                         "({} vs {} epochs); same best: {} (`{}`); Spearman of final `rd_score` {:.2f} "
                         "| ≤ 1/3, same best |", RESULTS,
           lambda d: (d["asha_vs_fifo"]["setting"]["space"], d["asha_vs_fifo"]["fifo"]["trials"],
                      len(d["asha_vs_fifo"]["setting"]["lambdas"]), d["asha_vs_fifo"]["setting"]["epochs"],
                      d["asha_vs_fifo"]["setting"]["steps_per_epoch"], d["asha_vs_fifo"]["ratio_epochs_asha_over_fifo"],
                      d["asha_vs_fifo"]["asha"]["epochs_spent"], d["asha_vs_fifo"]["fifo"]["epochs_spent"],
                      _yes(d["asha_vs_fifo"]["same_best"]), d["asha_vs_fifo"]["asha"]["best"],
                      d["asha_vs_fifo"]["spearman_rd_score"])),
    Figure(RESULTS_PAGE, "| real / estimated bpp, sample validation images (HPCM_Tiny after {} short epochs) | {:.3f} "
                         "| within 2 % |", RESULTS,
           lambda d: (d["real_vs_estimated_bpp"]["epochs"], d["real_vs_estimated_bpp"]["ratio_real_over_estimated"])),
    Figure(RESULTS_PAGE, "| peak memory, Phase 2 on / off ({}, batch {}, process RSS) | {:.2f} (off {:.0f} MiB, on {:.0f} MiB) "
                         "| — |", RESULTS,
           lambda d: (d["memory_phase2"]["model"], d["memory_phase2"]["batch"], d["memory_phase2"]["ratio_on_over_off"],
                      d["memory_phase2"]["peak_mib"]["off"], d["memory_phase2"]["peak_mib"]["on"])),
    *[Figure(RESULTS_PAGE, f"| loader images/s after / before, {name.replace('_', ' ')} ({{}}² crops) | {{:.2f}}x "
                           f"({{:.0f}} → {{:.0f}} ms per image) | — |", RESULTS,
             lambda d, name=name: (d["loader"]["patch"], d["loader"][name]["ratio_after_over_before"],
                                   d["loader"][name]["ms_per_image_before"], d["loader"][name]["ms_per_image_after"]))
      for name in ("768x512_png", "2040x1356_png", "2040x1356_jpeg")],
    Figure(RESULTS_PAGE, "`benchmarks/results/demo_trial_profile.json` ({}; {}), written by `{}`", PROFILE,
           lambda d: (d["date"], d["machine"], d["command"])),
    Figure(RESULTS_PAGE, "one `cpu-smoke` trial (δ = {:g}) of {} epochs × {} steps of batch {}", PROFILE,
           lambda d: (d["result"]["delta"], d["result"]["epochs"], d["result"]["steps_per_epoch"],
                      d["result"]["batch_size"])),
    *[Figure(RESULTS_PAGE, f"| {label} | {{:.2f}} |", PROFILE, lambda d, key=key: (d["result"]["sections_cpu_s"][key],))
      for key, label in (("train_steps", "training steps (forward, backward, Adam)"),
                         ("validation", "validation of the 4 λ models, every epoch"),
                         ("predictability", "inter-scale predictability fit (inside validation)"),
                         ("real_bpp", "real bitstreams (once, last epoch)"), ("checkpoints", "checkpoints"))],
    Figure(RESULTS_PAGE, "| **whole trial** | **{:.1f}** |", PROFILE, lambda d: (d["result"]["cpu_s"],)),
    Figure(RESULTS_PAGE, "`positive_control.json` ({}; {})", CONTROL, lambda d: (d["date"], d["machine"])),
    Figure(RESULTS_PAGE, "| budget | {}, {} seeds × {} λ, {} epochs × {} steps, batch {}, patch {}, lr {:g}; Phase 1 over "
                         "epochs 1–{}, then Phase 2 repel δ {:g}, aligner `{}` |", CONTROL,
           lambda d: (", ".join(d["budget"]["models"]), d["budget"]["seeds"], len(d["budget"]["lambdas"]),
                      d["budget"]["epochs"], d["budget"]["steps_per_epoch"], d["budget"]["batch_size"],
                      d["budget"]["patch_size"], d["budget"]["learning_rate"], d["budget"]["truncation_epochs"],
                      d["budget"]["configurations"]["phase1+2"]["delta"], d["phase2_aligner"])),
    Figure(RESULTS_PAGE, "| phase1+2: λ × seed pairs reaching off's final validation loss | {} of {} |", CONTROL,
           lambda d: (_dhic(d)["convergence"]["phase1+2"]["reached"], _dhic(d)["convergence"]["phase1+2"]["n"])),
    Figure(RESULTS_PAGE, "| phase1+2: final validation loss / off (geometric mean, 95 % CI over seeds) "
                         "| {:.3f} [{:.3f}, {:.3f}] |", CONTROL,
           lambda d: (_dhic(d)["convergence"]["phase1+2"]["final_loss_ratio"],
                      *_dhic(d)["convergence"]["phase1+2"]["final_loss_ratio_ci"])),
    Figure(RESULTS_PAGE, "| phase1+2: BD-rate vs off, test split, real bpp | {} |", CONTROL,
           lambda d: (_dhic(d)["bd_rate_vs_off"]["phase1+2"]["status"],)),
    *[Figure(RESULTS_PAGE, f"| {label}: off → phase1+2 | {{:.3f}} [{{:.3f}}, {{:.3f}}] ({{}} of {{}} defined) → "
                           "{:.3f} [{:.3f}, {:.3f}] ({} of {} defined) |", CONTROL,
             lambda d, kind=kind: (*_ci(_dhic(d)["inter_scale_r2"]["off"][kind]),
                                   *_ci(_dhic(d)["inter_scale_r2"]["phase1+2"][kind])))
      for kind, label in (("r2", "inter-scale R² of the decoded latents ŷ, cross (validation, last epoch, mean of pairs × λ, "
                                 "95 % CI over seeds)"),
                          ("within", "within-image R² (same latents)"), ("neighbourhood", "neighbourhood R² (same latents)"),
                          ("cka", "cross-image CKA (same latents)"))],
    Figure(RESULTS_PAGE, "| inter-scale R² per pair, cross (mean over λ × seeds): off → phase1+2 | {} |", CONTROL,
           lambda d: ("; ".join(f"{pair} {_dhic(d)['inter_scale_r2']['off']['r2']['per_pair'][pair]:.3f} → "
                                f"{_dhic(d)['inter_scale_r2']['phase1+2']['r2']['per_pair'][pair]:.3f}"
                                for pair in _dhic(d)["inter_scale_r2"]["off"]["pairs"]),)),
    Figure(RESULTS_PAGE, "| last-epoch validation RD curve monotone? mean over seeds (seeds' own): off / phase1+2 "
                         "| {} ({} of {}) / {} ({} of {}) |", CONTROL,
           lambda d: tuple(x for c in ("off", "phase1+2") for x in (
               _yes(_dhic(d)["val_curves"][c]["monotone"]), _dhic(d)["val_curves"][c]["seeds_monotone"],
               _dhic(d)["val_curves"][c]["seeds"]))),
    Figure(RESULTS_PAGE, "| mean test RD curve monotone? off / phase1+2 | {} / {} |", CONTROL,
           lambda d: tuple(_yes(_dhic(d)["test_curves"][c]["monotone"]) for c in ("off", "phase1+2"))),
    Figure(RESULTS_PAGE, "| largest validation PSNR drop between epochs, any λ × seed: off / phase1+2 | {:.2f} / {:.2f} dB |",
           CONTROL, lambda d: tuple(_dhic(d)["stability"][c]["max_drop_db"] for c in ("off", "phase1+2"))),
    Figure(RESULTS_PAGE, "| training time off / phase1+2 (s, all seeds × λ) | {:.0f} / {:.0f} |", CONTROL,
           lambda d: tuple(_dhic(d)["train_seconds"][c] for c in ("off", "phase1+2"))),
    Figure(RESULTS_PAGE, "`benchmarks/results/spaces_smoke.json` ({}; {})", SPACES, lambda d: (d["date"], d["machine"])),
    Figure(RESULTS_PAGE, "{}", SPACES, lambda d: (spaces_markdown(d),)),
]


def _power_row(case: str) -> Callable[[dict], tuple]:
    """A power_check case as docs/planning.md's table row: the recommendation (and the truth's need),
    predicted / measured power there and at 3–6 seeds."""
    def values(d: dict) -> tuple:
        row, at = d["cases"][case], d["cases"][case]["at_recommended"]
        need = row["truth_needs_seeds"]
        return (f"{row['recommended_seeds']} seeds" if at else "none up to 8 seeds",
                f"{need} seeds" if need else f"over {max(r['seeds'] for r in row['sizes'])} seeds",
                f"{at['predicted']:.2f} / {at['measured']:.2f}" if at else "—",
                ", ".join(f"{r['predicted']:.2f}/{r['measured']:.2f}" for r in row["sizes"] if r["seeds"] <= 6))
    return values


def _null_range(d: dict) -> tuple:
    """Smallest and largest share (%) of null studies with a verdict, the planner's and the truth's."""
    sizes = [r for row in d["cases"].values() for r in row["sizes"]]
    return tuple(f(100 * r[key] for r in sizes) for key in ("predicted_null", "measured_null") for f in (min, max))


def _small_pilots(d: dict) -> tuple:
    """The 3-seed pilots' recommendations, case by case in the file's order: as estimated, and at the upper end."""
    def seeds(key: str) -> str:
        return "; ".join(", ".join(str(pilot[key] or "none") for pilot in row["small_pilots"])
                         for row in d["cases"].values())
    return seeds("recommended"), seeds("upper_noise_recommended")


PLANNING_PAGE = "docs/planning.md"
POWER_TRUTHS = {"paired seed noise": "paired seed noise, 3 % per seed, pair correlation 0.5 (−5 %)",
                "unpaired seed noise": "unpaired seed noise, 3 % per seed (−7 %)",
                "heavy-tailed images (t3)": "t(3) configuration × image effects, sd 5 % (−5 %)",
                "a third of seeds 3x noisier": "a third of seeds 3× noisier (−5 %)",
                "paired, K = 3": "paired seed noise, K = 3 judged together, 31 images (−7 %)"}
FIGURES += [
    Figure(PLANNING_PAGE, "`benchmarks/results/power_check.json` ({}; {}; {:.0f} min", POWER_CHECK,
           lambda d: (d["date"], d["machine"], d["seconds"] / 60)),
    *[Figure(PLANNING_PAGE, f"| {label} | {{}} ({{}}) | {{}} | {{}} |", POWER_CHECK, _power_row(case))
      for case, label in POWER_TRUTHS.items()],
    Figure(PLANNING_PAGE, "Nulls got a verdict in {:.0f}–{:.0f} % of the planner's studies and {:.0f}–{:.0f} % of the "
                          "truth's", POWER_CHECK, _null_range),
    Figure(PLANNING_PAGE, "image sd at {:.2f} % (the truth's: {:.0f} %)", POWER_CHECK,
           lambda d: (100 * d["cases"]["heavy-tailed images (t3)"]["large_pilot_estimates"]["image_sd"],
                      100 * d["cases"]["heavy-tailed images (t3)"]["case"]["noise"]["image_sd"])),
    Figure(PLANNING_PAGE, "the planner recommended {} seeds (truth by truth, in the table's order); at the paired "
                          "seed noise's upper end, {}", POWER_CHECK, _small_pilots),
]


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f"{f.page}:{f.template[:50]}")
def test_every_registered_figure_is_the_one_its_file_holds(figure):
    text = (ROOT / figure.page).read_text()
    expected = figure.expected()
    assert expected in text, f"{figure.page} should quote, from {figure.source.name}:\n{expected}"


PARAMETER_PAGES = {"README.md": ("HPCM_Tiny",), "docs/training.md": ("HPCM_Tiny", "HPCM_Base", "HPCM_Large",
                                                                     "DHIC_Tiny", "DHIC_Base")}


def test_parameter_counts_quoted_are_the_models_own():
    from trainable.models import create_model

    counts = {name: sum(p.numel() for p in create_model(name).parameters())
              for name in {n for names in PARAMETER_PAGES.values() for n in names}}
    assert (ROOT / "README.md").read_text().count(f"HPCM_Tiny ({counts['HPCM_Tiny'] / 1e6:.2f} M parameters") >= 1
    training = (ROOT / "docs/training.md").read_text()
    for name in PARAMETER_PAGES["docs/training.md"]:
        assert f"| `{name}` | {counts[name] / 1e6:.2f} M |" in training, name


# README's preset table: the last two cells of a preset's row are the dry run's total and wall-clock.
DRY_RUN_EXTRA = {"paper": ["--steps-per-epoch", "1296"]}


def _readme_row(preset: str) -> list[str]:
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(f"| `{preset}` |")]
    assert len(rows) == 1, f"README needs one preset-table row for {preset}"
    return [cell.strip() for cell in rows[0].strip().strip("|").split("|")]


@pytest.mark.parametrize("preset", ["cpu-smoke", "gpu-short", "paper", "gpu-day", "gpu-convergence"])
def test_readme_preset_costs_are_the_dry_runs(preset, capsys):
    import torch

    from search.run import main

    if preset != "cpu-smoke" and torch.cuda.is_available():
        pytest.skip("on a GPU machine the dry run times real steps; README quotes the documented default")
    assert main(["--space", "phase2_delta", "--preset", preset, "--dry-run", "--plan-gpus", "8",
                 *DRY_RUN_EXTRA.get(preset, [])]) == 0
    out = capsys.readouterr().out
    total = re.search(r"^total: ([\d.,]+ [A-Z]+-hours)", out, re.M).group(1)
    wall = re.search(r"on 8 GPUs .*: about (.+) wall-clock", out)
    cells = _readme_row(preset)
    assert cells[-2] == total, (cells, total)
    assert cells[-1] == (wall.group(1) if wall else "—"), (cells, out)


def test_readme_quotes_the_dry_runs_default_gpu_step_time():
    from search.cost import default_step_seconds

    seconds, _ = default_step_seconds("HPCM_Base", 16, 256, gpu=True)
    assert f"HPCM_Base {seconds:g} s a step at batch 16 × 256²" in (ROOT / "README.md").read_text()


def test_mkdocs_builds_strictly(tmp_path):
    """Broken links or anchors between pages, and pages left out of the nav, fail the build."""
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "site" / "index.html").exists()


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", markdown, re.M)}


def test_readme_links_resolve():
    """README is outside the mkdocs site: its relative links and anchors are checked here."""
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        path, _, anchor = link.partition("#")
        target = ROOT / path if path else ROOT / "README.md"
        assert target.exists(), f"README links to a missing file: {link}"
        if anchor:
            assert anchor in _anchors(target.read_text()), f"README links to a missing anchor: {link}"


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, len(lines)


def test_citation_file_is_valid_yaml_with_the_cited_works():
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"].startswith("1.2") and cff["license"] == "MIT"
    titles = {ref["title"] for ref in cff["references"]}
    assert any("Hierarchical Progressive Context Modeling" in t for t in titles)
    assert any("Spectral Regularization" in t for t in titles)
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert cff["authors"]
