"""`netwright compare`: one self-contained page over several runs. The spec rows are exactly the
keys planted to differ, the numbers equal the runs' files, a study folder expands in trial
order with its best trial marked, Pareto marks match hand-worked cases, and Chromium shows
every picture without a request leaving the file."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

import netwright
from netwright.compress import compressor as compress_stage
from netwright.report.html import num
from conftest import assert_one_line_error, needs_packages, tiny_spec

EXTERNAL = re.compile(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)  # as the model card's test
NAMES = ["trial-0000", "trial-0001", "trial-0002"]
# the three specs differ in exactly these keys (and the run name, which heads the columns)
PLANTED = {"model.hidden": ["[16]", "[32]", "[16]"], "train.optimizer.lr": ["0.01", "0.01", "0.003"]}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny iris runs in one folder; the first two evaluated, the first compressed."""
    folder = tmp_path_factory.mktemp("compare") / "runs" / "study"
    for name, hidden, lr in zip(NAMES, ([16], [32], [16]), (0.01, 0.01, 0.003)):
        spec = tiny_spec(optimizer={"lr": lr})
        spec["model"]["hidden"] = hidden
        run = netwright.train(spec, name=name, runs_dir=folder, progress="quiet")
        if name != "trial-0002":
            netwright.evaluate(run, plots=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compress_stage, "LATENCY_BUDGET_S", 0.02)
        netwright.compress(folder / "trial-0000", progress="quiet")
    return folder


class Tables(HTMLParser):
    """Each table's rows of cell texts, under the id of the innermost element around it that has one."""

    def __init__(self, page: str):
        super().__init__()
        self.ids: list[str | None] = []
        self.tables: dict[str | None, list[list[list[str]]]] = {}
        self.cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag in ("section", "div", "table"):
            self.ids.append(dict(attrs).get("id"))
        if tag == "table":
            self.table: list[list[str]] = []
            self.tables.setdefault(next((i for i in reversed(self.ids) if i), None), []).append(self.table)
        elif tag == "tr":
            self.table.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("section", "div", "table"):
            self.ids.pop()
        elif tag in ("td", "th"):
            self.table[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)

    def one(self, ident: str) -> list[list[str]]:
        (table,) = self.tables[ident]
        return table


def test_page_shows_spec_differences_curves_metrics_and_tradeoffs(study: Path, cli, tmp_path: Path):
    runs = [study / n for n in NAMES]
    result = cli("compare", *runs)
    assert result.code == 0, result.err
    page_file = tmp_path / "compare.html"  # the default: the current folder
    assert "wrote compare.html (3 runs)" in result.out
    assert "not evaluated: trial-0002" in result.err
    page = page_file.read_text()
    t = Tables(page)

    spec = t.one("spec-diff")
    assert spec[0] == ["key", *NAMES]
    assert {r[0]: r[1:] for r in spec[1:]} == PLANTED  # only the keys that differ, each value as the spec has it

    test = {r[0]: r[1:] for r in t.one("test-metrics")}
    assert test["metric"] == NAMES
    for i, name in enumerate(NAMES):
        if name == "trial-0002":
            assert {v[i] for k, v in test.items() if k != "metric"} == {"not evaluated"}
            continue
        ev = json.loads((study / name / "eval.json").read_text())
        assert test["examples"][i] == str(ev["n"]) and test["split"][i] == "test"
        for k, v in ev["metrics"].items():
            assert test[k][i] == num(v, 4), (name, k)
    assert "netwright evaluate RUN" in page and f"netwright evaluate {study / 'trial-0002'}" in page

    # across the runs: accuracy against the size of model.safetensors, both straight from the files
    across = {r[0]: r[1:] for r in t.one("front-runs")}
    assert set(across) == {"run", "trial-0000", "trial-0001"}
    acc = {n: json.loads((study / n / "eval.json").read_text())["metrics"]["accuracy"] for n in NAMES[:2]}
    kb = {n: (study / n / "model.safetensors").stat().st_size / 1024 for n in NAMES[:2]}
    assert kb["trial-0000"] < kb["trial-0001"]  # 16 hidden units against 32
    for n in NAMES[:2]:
        assert across[n][:2] == [num(acc[n], 4), num(kb[n], 4)]
    # of two points the smaller is on the front; the larger only when it is more accurate
    assert across["trial-0000"][-1] == "Pareto-optimal"
    assert across["trial-0001"][-1] == ("Pareto-optimal" if acc["trial-0001"] > acc["trial-0000"] else "")

    # the compressed variants of trial-0000, as compress.json has them
    comp = json.loads((study / "trial-0000" / "compress" / "compress.json").read_text())
    rows = {r[0]: r[1:] for r in t.one("front-compress-0")[1:]}
    assert set(rows) == {"original", *comp["variants"]}
    for name, row in [("original", comp["original"]), *comp["variants"].items()]:
        assert rows[name][:3] == [num(row["test_score"], 4), num(row["size_bytes"] / 1024, 4),
                                  num(row["latency_ms"]["1"], 4)]
    assert page.count("data:image/png;base64,") == 3  # curves, across the runs, the variants
    assert not EXTERNAL.search(page) and "<script" not in page and "<link" not in page
    assert 'id="studies"' not in page  # no folder of runs was given


def test_a_study_folder_expands_in_trial_order_and_marks_the_best(study: Path, cli, tmp_path: Path):
    folder = tmp_path / "tuned"
    shutil.copytree(study, folder)
    trials = [{"number": 0, "state": "COMPLETE", "value": 0.9, "params": {"lr": 0.003}, "run": "trial-0002"},
              {"number": 1, "state": "COMPLETE", "value": 0.4, "params": {"lr": 0.01}, "run": "trial-0000"},
              {"number": 2, "state": "FAIL", "value": 0.1, "run": "trial-0001"},  # lowest, but failed
              {"number": 3, "state": "PRUNED"}]  # no run folder, no value
    (folder / "study.json").write_text(json.dumps({"metric": "val_loss", "direction": "minimize", "trials": trials}))
    result = cli("compare", folder, "-o", f"{tmp_path / 'out'}/")  # a folder not made yet
    assert result.code == 0, result.err
    t = Tables((tmp_path / "out" / "compare.html").read_text())
    order = [r[0] for r in t.one("runs-table")[1:]]
    assert order == ["tuned/trial-0002", "tuned/trial-0000 (best trial)", "tuned/trial-0001"]
    header = t.one("runs-table")[0]
    reached = {r[0]: r[header.index("to 99% of best")] for r in t.one("runs-table")[1:]}
    for trial in ("trial-0002", "trial-0000", "trial-0001"):
        level = json.loads((folder / trial / "train.json").read_text())["time_to"]["levels"][-1]
        assert reached[next(k for k in reached if trial in k)] == f"{level['seconds']:.1f} s (epoch {level['epoch']})"
    trials_shown = t.one("study-trials")
    assert [r[0] for r in trials_shown[1:]] == ["0", "1 (best)", "2", "3"]
    assert [r[2] for r in trials_shown[1:]] == [num(0.9, 4), num(0.4, 4), num(0.1, 4), "-"]

    # the study's own pick (netwright tune records it) stands; keys may be missing
    (folder / "study.json").write_text(json.dumps({"trials": [{"run": "trial-0001"}], "best": {"number": 7}}))
    assert cli("compare", folder, "-o", tmp_path / "b.html").code == 0
    order = [r[0] for r in Tables((tmp_path / "b.html").read_text()).one("runs-table")[1:]]
    assert order == ["tuned/trial-0000", "tuned/trial-0001", "tuned/trial-0002"]  # by name: no trial numbers
    (folder / "study.json").write_text("{not json")
    result = cli("compare", folder, "-o", tmp_path / "c.html")
    assert result.code == 0 and "study.json: unreadable" in result.err


def test_mitigation_front_excludes_degenerate_variants(study: Path, tmp_path: Path):
    """A planted mitigate.json: A beats B at both; C is degenerate (it would top the gap); the
    original and D are more accurate than A at a larger gap."""
    run = tmp_path / "mitigated"
    shutil.copytree(study / "trial-0002", run)
    rows = [("original", 0.80, 0.20, []), ("A", 0.78, 0.05, []), ("B", 0.70, 0.10, []),
            ("C", 0.50, 0.00, ["degenerate: decides the same for 99% of the examples"]), ("D", 0.82, 0.25, [])]
    (run / "fairness").mkdir()
    (run / "fairness" / "mitigate.json").write_text(json.dumps({"rows": [
        {"label": label, "accuracy": a, "demographic_parity_difference": g, "flags": f} for label, a, g, f in rows]}))
    from netwright.stages.compare import compare

    result = compare([study / "trial-0000", run], out=tmp_path / "m.html")
    marks = {r[0]: r[-1] for r in Tables((tmp_path / "m.html").read_text()).one("front-mitigate-1")[1:]}
    assert marks == {"original": "Pareto-optimal", "A": "Pareto-optimal", "B": "", "C": "excluded (degenerate)",
                     "D": "Pareto-optimal"}
    assert result["not_evaluated"] == ["mitigated"]


def test_bad_arguments_are_one_line_errors(study: Path, cli, tmp_path: Path):
    one = study / "trial-0000"
    assert_one_line_error(cli("compare", one), "at least 2 runs")
    assert_one_line_error(cli("compare", one, one), "at least 2 runs")  # the same run twice is one run
    assert_one_line_error(cli("compare", one, tmp_path / "nowhere"), "nowhere", "no such run")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert_one_line_error(cli("compare", tmp_path / "empty", one), "empty", "holds no runs")
    assert not (tmp_path / "compare.html").exists()


@needs_packages("chromium")
def test_page_in_a_real_browser(study: Path, tmp_path: Path):
    """Headless Chromium (launched as for the model card) shows every section and decodes every
    picture, and the page asks for nothing beyond its own file."""
    from playwright.sync_api import sync_playwright

    from netwright.report.compare import SECTIONS
    from netwright.stages.compare import compare

    page_file = Path(compare([study], out=tmp_path / "page.html")["path"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.resolve().as_uri())
        assert page.locator("h2").all_text_contents() == [title for _, title in SECTIONS]
        images = page.evaluate("[...document.images].map(i => [i.alt, i.naturalWidth, i.clientWidth])")
        browser.close()
    assert len(images) == 3 and all(natural > 0 and shown >= 0.9 * natural for _, natural, shown in images), images
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
