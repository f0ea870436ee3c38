"""Bulk prediction: a table file streamed through a run in chunks (CSV, Parquet, JSON Lines in and
out) gives exactly the in-memory predictions, keeps the ID column, resumes after kill -9 to a
byte-identical file, and refuses bad input in one line without touching an earlier output."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import netwright
from netwright.stages.predict import predict_file

from conftest import assert_one_line_error, run_subprocess


@pytest.fixture(scope="module")
def birds(tmp_path_factory) -> tuple[netwright.Run, Path]:
    """A penguins run (its table has missing cells) and the table again, 1,376 rows with an ID column."""
    tmp = tmp_path_factory.mktemp("bulk")
    run = netwright.train({"data": {"name": "penguins"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 2, "threads": 1}}, name="birds", runs_dir=tmp / "runs", progress="quiet")
    archive = metadata.distribution("scikit-lego").locate_file("sklego/data/penguins.zip")
    rows = list(csv.reader(zipfile.ZipFile(archive).read("penguins.csv").decode().splitlines()))
    path = tmp / "birds.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["bird", *rows[0]])
        for i in range(4 * (len(rows) - 1)):
            w.writerow([f"b{i}", *rows[1 + i % (len(rows) - 1)]])
    return run, path


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_streamed_predictions_equal_the_in_memory_ones_and_keep_the_id(birds, tmp_path: Path, suffix):
    run, path = birds
    expected = netwright.predict(run, path)
    out = tmp_path / f"preds{suffix}"
    summary = predict_file(run, path, out, id_column="bird", chunk_rows=500)
    assert summary == {"rows": len(expected), "chunks": 3, "resumed": 0, "out": str(out), "failed": 0,
                       "first_error": None}
    if suffix == ".parquet":
        got = pq.read_table(out).to_pylist()
    elif suffix == ".csv":
        got = [{k: (v if k in ("bird", "label", "error") else float(v)) for k, v in r.items()} for r in csv.DictReader(open(out))]
    else:
        got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["bird"] for r in got] == [f"b{i}" for i in range(len(expected))]
    assert [r["label"] for r in got] == [e["label"] for e in expected]
    for r, e in zip(got, expected):
        assert [r[f"p_{k}"] for k in e["probabilities"]] == pytest.approx(list(e["probabilities"].values()), abs=1e-6)
    assert not out.with_name(out.name + ".parts").exists()


def test_a_parquet_input_is_cut_into_exact_chunks_whatever_its_row_groups(birds, tmp_path: Path):
    run, path = birds
    src = tmp_path / "birds.parquet"
    pq.write_table(pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)), src,
                   row_group_size=333)
    out = tmp_path / "p.csv"
    seen = []
    summary = predict_file(run, src, out, id_column="bird", chunk_rows=400, progress=lambda d, t: seen.append((d, t)))
    assert summary["chunks"] == 4 and seen == [(400, 1376), (800, 1376), (1200, 1376), (1376, 1376)]
    with_csv = tmp_path / "q.csv"
    predict_file(run, path, with_csv, id_column="bird", chunk_rows=400)
    assert out.read_bytes() == with_csv.read_bytes()  # nulls from Parquet are the CSV's blanks and NAs
    from netwright.data.chunks import read_chunks

    # a resumed job starts inside the third row group (800 = 2 x 333 + 134) with the same chunks
    whole = [c.table.to_pydict() for c in read_chunks(src, 400)]
    assert [c.table.to_pydict() for c in read_chunks(src, 400, skip=800)] == whole[2:]


def test_a_job_killed_mid_file_resumes_to_the_same_bytes(birds, tmp_path: Path):
    run, path = birds
    big = tmp_path / "big.csv"
    lines = path.read_text().splitlines()
    big.write_text("\n".join([lines[0]] + lines[1:] * 30) + "\n")  # 41,280 rows
    out, whole = tmp_path / "p.csv", tmp_path / "whole.csv"
    parts = out.with_name(out.name + ".parts")
    proc = subprocess.Popen([sys.executable, "-m", "netwright", "predict", str(run.home), str(big), "--out", str(out),
                             "--id", "bird", "--chunk-rows", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(list(parts.glob("part-*.csv"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and len(list(parts.glob("part-*.csv"))) >= 3
    r = run_subprocess("predict", run.home, big, "--out", out, "--id", "bird", "--chunk-rows", "1000", timeout=120)
    assert r.returncode == 0 and "resumed after" in r.stderr, r.stderr
    predict_file(run, big, whole, id_column="bird", chunk_rows=1000)
    assert out.read_bytes() == whole.read_bytes()


def test_bad_bulk_input_is_one_line_and_an_earlier_output_is_kept(birds, tmp_path: Path, cli):
    run, path = birds
    out = tmp_path / "p.parquet"
    predict_file(run, path, out, chunk_rows=5000)
    before = out.read_bytes()
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"island": "Dream"}\n{oops\n')
    no_column = tmp_path / "cols.csv"
    no_column.write_text("island,bill_length_mm\nDream,40\n")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    for args, message in [
        ((path, "--id", "nope"), "no column 'nope' (--id)"),
        ((bad_jsonl,), "line 2 is not JSON"),
        ((no_column,), "missing column 'bill_depth_mm'"),
        ((broken,), "not a readable Parquet file"),
    ]:
        assert_one_line_error(cli("predict", run.home, *args, "--out", out), message)
        assert out.read_bytes() == before
    assert_one_line_error(cli("predict", run.home, path, "--out", tmp_path / "p.txt"), "choose json or csv")


def test_bulk_prediction_of_a_non_table_run_names_what_it_takes(tmp_path: Path):
    run = netwright.train({"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 1, "threads": 1}}, name="digits", runs_dir=tmp_path, progress="quiet")
    src = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": [1.0]}), src)
    with pytest.raises(netwright.NetwrightError, match="bulk prediction streams table files into a tabular run and "
                                                       "folders of images into an image run; this model takes image "
                                                       r"inputs and .*x.parquet is a table file"):
        predict_file(run, src, tmp_path / "out.parquet")


def test_rows_that_cannot_be_read_get_an_error_column_and_the_others_are_predicted(birds, tmp_path: Path, cli):
    """One bad number and one new island among good rows: by default the good rows are predicted
    (the same as alone), the bad one is written with empty fields and its error, and the command
    exits 2 with the count; --on-error skip leaves it out, stop refuses the file as before. A
    category first seen here (a one-hot column) is read as none of the known ones, with a note."""
    run, path = birds
    rows = list(csv.reader(path.open()))
    header, good = rows[0], rows[1:7]
    mass = header.index("body_mass_g")
    bad = list(good[2])
    bad[mass] = "about four kilos"
    new_island = list(good[4])
    new_island[header.index("island")] = "Atlantis"
    src = tmp_path / "some.csv"
    with open(src, "w", newline="") as fh:
        csv.writer(fh).writerows([header, good[0], good[1], bad, good[3], new_island, good[5]])
    out = tmp_path / "p.parquet"
    result = cli("predict", run.home, src, "--out", out, "--id", "bird", "--chunk-rows", "2")
    last = result.err.strip().splitlines()[-1]
    assert result.code == 2 and "Traceback" not in result.err
    assert last.startswith("error: 1 row could not be predicted (written with an error column)"), last
    assert "row 3: numeric column 'body_mass_g' holds text 'about four kilos'" in last
    table = pq.read_table(out).to_pylist()
    assert [r["bird"] for r in table] == [r[0] for r in (good[0], good[1], bad, good[3], new_island, good[5])]
    assert [r["error"] is None for r in table] == [True, True, False, True, True, True]
    assert table[2]["label"] is None and table[2]["p_Adelie"] is None
    alone = netwright.predict(run, {h: [v] for h, v in zip(header, good[3])})[0]
    assert table[3]["label"] == alone["label"] and abs(table[3]["p_Adelie"] - alone["probabilities"]["Adelie"]) < 1e-6
    assert "categories not seen in training read as none of the known ones" in result.err and "Atlantis" in result.err
    skipped = cli("predict", run.home, src, "--out", tmp_path / "s.csv", "--on-error", "skip")
    assert skipped.code == 2 and "(left out)" in skipped.err
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 1 + 5
    assert_one_line_error(cli("predict", run.home, src, "--out", tmp_path / "t.csv", "--on-error", "stop"),
                          "row 3 holds text 'about four kilos'", "--on-error null")
    assert not (tmp_path / "t.csv").exists()
