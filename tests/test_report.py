"""The model card: any subset of stages renders, no external assets, numbers equal the stage
files, and a real browser shows its sections."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

import netwright
from netwright.compress import compressor as compress_stage
from netwright.demo import DIGITS, LOANS
from netwright.demo import demo as run_demo
from netwright.report.html import SECTIONS
from conftest import ROOT, needs_packages

EXTERNAL = re.compile(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


def small(name: str, spec: dict) -> netwright.Run:
    spec = {**spec, "train": {**spec["train"], "epochs": 2, "threads": 1}}
    return netwright.train(spec, name=name, progress="quiet")


STAGES = {
    "evaluate": lambda r: netwright.evaluate(r),
    "explain": lambda r: netwright.explain(r, samples=2),
    "compress": lambda r: netwright.compress(r, progress="quiet"),
    "export": lambda r: netwright.export(r),
    "audit": lambda r: netwright.audit(r),
}


@pytest.mark.parametrize("stages", [[], ["evaluate"], ["explain", "export"], ["compress"], ["audit", "evaluate"]],
                         ids=lambda s: "+".join(s) or "train-only")
def test_report_renders_for_any_subset_of_stages(stages, monkeypatch):
    monkeypatch.setattr(compress_stage, "LATENCY_BUDGET_S", 0.02)
    run = small("r", LOANS)
    for s in stages:
        STAGES[s](run)
    card = netwright.report(run)
    page = run.file("report.html").read_text()
    assert set(card["missing_stages"]) >= {"mitigate", "monitor"}
    assert "Time to be good: val_accuracy reached 90% of the best" in page
    for s in ("evaluate", "explain", "audit", "compress", "export"):
        assert (s in card["missing_stages"]) == (s not in stages)
        if s not in stages:
            assert f"The {s} stage has not run" in page
    for key, title in SECTIONS:
        assert f'id="{key}"' in page and f"<h2>{title}</h2>" in page
    assert not EXTERNAL.search(page)
    assert "<script" not in page and "<link" not in page


def test_card_numbers_equal_the_stage_files(monkeypatch):
    monkeypatch.setattr(compress_stage, "LATENCY_BUDGET_S", 0.02)
    run = small("r", LOANS)
    ev = netwright.evaluate(run)
    audit = netwright.audit(run)
    comp = netwright.compress(run, progress="quiet")
    ver = netwright.export(run)
    expl = netwright.explain(run, samples=2)
    card = netwright.report(run)
    assert card == run.read_json("report.json")
    assert card["metrics"] == run.read_json("eval.json") == ev
    assert card["fairness"]["audit"] == run.read_json("audit.json") == audit
    assert card["compression"] == run.read_json("compress/compress.json") == comp
    assert card["deployment"]["original"] == ver
    assert card["explanations"] == expl
    assert card["training"]["history"] == run.metrics()
    assert card["data"]["fingerprint"] == run.read_json("data.json")["fingerprint"]
    assert card["model_details"]["parameters"] == netwright.count_parameters(run.load_model())
    page = run.file("report.html").read_text()
    from netwright.report.html import num

    assert f"<td>{num(ev['metrics']['accuracy'])}</td>" in page  # at the card's precision (3 decimals)
    dp = audit["groupings"]["group"]["gaps"]["demographic_parity_difference"]["value"]
    assert f"<td>{num(dp)}</td>" in page


def test_flops_and_overfitting_diagnosis(tmp_path: Path):
    run = netwright.train({"data": {"name": "iris", "val": 0.3}, "model": {"name": "mlp", "hidden": [256, 256]},
                           "train": {"epochs": 150, "threads": 1, "batch_size": 8, "optimizer": {"lr": 0.01},
                                     "keep": "last"}}, name="over", progress="quiet")
    card = netwright.report(run)
    assert card["model_details"]["flops_per_example"] == 2 * (4 * 256 + 256 * 256 + 256 * 3)
    over = card["training"]["overfitting"]
    assert over["flag"] == (over["gap_at_end"] > over["gap_at_best"]
                            and run.metrics()[-1]["val_loss"] > 1.1 * min(h["val_loss"] for h in run.metrics()))
    assert f"epoch {over['best_epoch']}" in over["detail"]
    assert card["resources"]["energy_kwh"] > 0 and "estimate" in card["resources"]["energy_method"]


def test_overfitting_is_flagged_on_a_planted_u_shaped_validation_loss_and_not_on_controls():
    """Planted histories, the gaps computed by hand: validation loss U-shaped while training loss
    keeps falling is overfitting; both losses falling, or both rising together (divergence, the
    gap not growing), is not."""
    from netwright.report.collect import overfitting

    def history(train, val):
        return [{"epoch": e, "train_loss": t, "val_loss": v} for e, (t, v) in enumerate(zip(train, val), start=1)]

    falling = [1.0, 0.8, 0.6, 0.4, 0.2, 0.1]
    summary = {"epochs": 6, "kept": "best", "best_epoch": 3, "stopped_early": False}
    # best validation loss 0.7 at epoch 3 (train 0.6: gap 0.1); at the end 1.3 vs 0.1 (gap 1.2)
    over = overfitting(history(falling, [1.1, 0.9, 0.7, 0.8, 1.0, 1.3]), summary)
    assert over["flag"] is True
    assert (over["best_epoch"], over["last_epoch"], over["kept_epoch"]) == (3, 6, 3)
    assert over["gap_at_best"] == pytest.approx(0.1) and over["gap_at_end"] == pytest.approx(1.2)
    assert "epoch 3" in over["detail"] and "Overfitting" in over["detail"]

    # control: validation keeps improving, so the last epoch is the best (gap 0.76 - 0.1 = 0.66 both)
    fine = overfitting(history(falling, [1.1, 0.95, 0.85, 0.8, 0.78, 0.76]), {**summary, "best_epoch": 6})
    assert fine["flag"] is False and (fine["best_epoch"], fine["last_epoch"]) == (6, 6)
    assert fine["gap_at_best"] == pytest.approx(0.66) and fine["gap_at_end"] == pytest.approx(0.66)
    assert "No sign of overfitting" in fine["detail"]

    # control: validation ends 50% above its best, but training loss rose with it (best epoch 3:
    # 0.6 - 0.5 = 0.1; end: 0.9 - 0.9 = 0.0): the gap shrank, so this is divergence, not overfitting
    div = overfitting(history([0.9, 0.7, 0.5, 0.7, 0.9], [1.0, 0.8, 0.6, 0.7, 0.9]), {"epochs": 5, "kept": "last"})
    assert div["flag"] is False and (div["best_epoch"], div["kept_epoch"]) == (3, 5)
    assert div["gap_at_best"] == pytest.approx(0.1) and div["gap_at_end"] == pytest.approx(0.0)


def test_demo_specs_are_the_example_files():
    assert DIGITS == yaml.safe_load((ROOT / "examples" / "digits_cnn.yaml").read_text())
    assert LOANS == yaml.safe_load((ROOT / "examples" / "loans_fairness.yaml").read_text())


@pytest.mark.slow
@needs_packages("chromium")
def test_demo_card_in_a_real_browser(tmp_path: Path):
    """`netwright demo`, then headless Chromium opens the digits card: every section is shown."""
    exe = shutil.which("chromium")
    from playwright.sync_api import sync_playwright

    cards = run_demo(runs_dir=tmp_path / "runs", say=lambda _: None)
    shot = tmp_path / "card.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(cards["digits"].resolve().as_uri())
        titles = page.locator("h2").all_text_contents()
        assert titles == [t for _, t in SECTIONS]
        for key, _ in SECTIONS:
            assert page.locator(f"section#{key}").is_visible()
        assert page.locator("img").count() >= 4 and all(
            page.locator("img").nth(i).evaluate("i => i.naturalWidth > 0") for i in range(page.locator("img").count()))
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert shot.stat().st_size > 50_000


def test_pictures_draw_no_text_under_nine_points(tmp_path: Path):
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from netwright.plots import MIN_FONT_PT, save_figure

    fig, ax = plt.subplots()
    ax.set_title("tiny", fontsize=5)
    ax.text(0.5, 0.5, "also tiny", fontsize=6)
    ax.tick_params(labelsize=4)
    save_figure(fig, tmp_path / "f.png")
    texts = [t for t in fig.findobj(Text) if t.get_text()]
    assert {"tiny", "also tiny", "0.0"} <= {t.get_text() for t in texts}
    assert all(t.get_fontsize() >= MIN_FONT_PT for t in texts)


@needs_packages("chromium")
def test_card_pictures_are_legible_and_its_text_is_spelled_right(tmp_path: Path):
    """Headless Chromium opens a card with every picture unfolded: each is displayed at no less
    than 0.9x its pixel width (its text was drawn at >= 9 pt: test above); the card's visible text
    passes codespell; the two-line summary names the baseline."""
    import subprocess
    import sys

    from playwright.sync_api import sync_playwright

    run = small("legible", {"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [16]}, "train": {}})
    netwright.evaluate(run)
    netwright.explain(run, samples=2)
    card = netwright.report(run)
    page_file = run.file("report.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_file.resolve().as_uri())
        assert page.locator("details img").count() >= 1  # the per-example grid is behind a click
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        sizes = page.evaluate("[...document.images].map(i => [i.alt, i.clientWidth, i.naturalWidth])")
        text = page.inner_text("body")
        browser.close()
    assert len(sizes) >= 3
    for alt, shown, natural in sizes:
        assert natural > 0 and shown >= 0.9 * natural, (alt, shown, natural)
    (tmp_path / "card.txt").write_text(text)
    spell = subprocess.run([sys.executable, "-m", "codespell_lib", str(tmp_path / "card.txt")],
                           capture_output=True, text=True)
    assert spell.returncode == 0, spell.stdout
    assert text.splitlines().count(card["summary"][0]) == 1 and "against" in card["summary"][1], card["summary"]
