"""Tables bigger than memory: a Parquet file streamed one row group at a time. Every training row
is read once an epoch in a block-shuffled order that the seed alone decides (one worker or two
give the same metrics byte for byte), an interrupt inside an epoch resumes at the same batch to
the same weights, the whole test split is scored, and the rows decode as the in-memory loader
encodes them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import netwright
from netwright.data import load_dataset
from netwright.data.stream import TableSource
from netwright.errors import TrainingInterrupted
from netwright.run import Run
from netwright.spec import load_spec
from netwright.training.checkpoint import read_weights

ROWS, GROUP = 6000, 500


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """Rows in row groups of 500: four numeric columns with 10% nulls, a colour, a label that
    depends on them, some rows without a label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("stream") / "t.parquet"
    x = rng.normal(size=(ROWS, 4))
    colour = rng.integers(0, 3, size=ROWS)
    y = (x[:, 0] + x[:, 1] - (colour == 1) + 0.3 * rng.normal(size=ROWS)) > 0
    cols = {f"x{i}": pa.array([None if rng.random() < 0.1 else float(v) for v in x[:, i]], pa.float64())
            for i in range(4)}
    cols["colour"] = pa.array(np.array(["red", "green", "blue"])[colour])
    cols["label"] = pa.array([None if i % 97 == 0 else ("yes" if v else "no") for i, v in enumerate(y)])
    pq.write_table(pa.table(cols), path, row_group_size=GROUP)
    return path


def spec(path: Path, **data) -> dict:
    return {"data": {"name": "parquet", "path": str(path), "target": "label", "stream": True, "workers": 1,
                     "fit_rows": 2000, "sample_rows": 300, **data},
            "model": {"name": "mlp", "hidden": [16], "dropout": 0.2},
            "train": {"epochs": 2, "batch_size": 128, "threads": 1}}


def test_an_epoch_reads_every_training_row_once_in_an_order_the_seed_decides(table: Path):
    ds = load_dataset(load_spec(spec(table)).data)
    labelled = ROWS - len(range(0, ROWS, 97))
    assert sum(ds.info.splits.values()) == labelled and type(ds.train).__name__ == "StreamedSplit"
    assert len(ds.train.x) == 300  # what stays in memory: a sample
    rows = lambda seed: torch.cat([x for x, _ in ds.train.batches(128, seed)])  # noqa: E731
    a, b, c = rows(1), rows(1), rows(2)
    assert len(a) == len(ds.train) and torch.equal(a, b) and not torch.equal(a, c)
    key = lambda t: sorted(map(tuple, t.numpy().round(5).tolist()))  # noqa: E731
    assert key(a) == key(c)  # the same rows, another order
    # resuming at batch 5 gives the batches from 5 on
    tail = torch.cat([x for x, _ in ds.train.batches(128, 1, start=5)])
    assert torch.equal(tail, a[5 * 128:])


def test_streamed_rows_decode_as_the_in_memory_loader_encodes_them(table: Path):
    """Fitted on the first training rows, the streamed encoding of the test split equals the
    parquet loader's encoding of the same rows with the same preprocessing."""
    from netwright.data.preprocess import encode_table, normalize
    from netwright.data.preprocess import arrow_cells as cells
    from netwright.data.stream import split_codes

    ds = load_dataset(load_spec(spec(table)).data)
    pre = ds.info.preprocess
    import pyarrow.parquet as pq

    whole = pq.read_table(table)
    codes = split_codes(0, ROWS, 0.15, 0.15, 0)
    keep = np.array([v is not None for v in whole.column("label").to_pylist()]) & (codes == 2)
    test = {c: [v for v, k in zip(vs, keep) if k] for c, vs in cells(whole).items()}
    expected = normalize(pre, encode_table(pre["columns"], test, "t"))
    streamed = torch.cat([x for x, _ in ds.test.batches(1000)]).numpy()
    assert np.allclose(streamed, expected, atol=1e-6)
    assert ds.info.splits["test"] == int(keep.sum())


class RecordedTable(TableSource):
    """A Parquet table that notes, for every row group it decodes, the process decoding it (a line
    ``pid group`` appended to ``LOG``; the path travels with the pickled source into the workers)."""

    LOG = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = type(self).LOG

    def decode(self, g, state):
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()} {g}\n")
        return super().decode(g, state)


def decoded_by(log: Path) -> dict[int, set[int]]:
    """{process id: row groups it decoded} from a :class:`RecordedTable` log."""
    out: dict[int, set[int]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        pid, g = map(int, line.split())
        out.setdefault(pid, set()).add(g)
    return out


def test_one_worker_or_two_give_the_same_run(table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The same metrics byte for byte with one worker or two, the decoded table kept or not. With
    the table too big to keep (CACHE_BYTES: 0, every epoch decodes its row groups afresh), workers: 1
    decodes every row group in this process and workers: 2 decodes every group holding training rows
    in other processes (the pool's). (A kept table of this size is decoded whole in this process by
    the training sample before the first epoch: the pool then has nothing to decode.)"""
    import netwright.data.stream as stream

    monkeypatch.setattr(stream, "TableSource", RecordedTable)
    runs = {}
    for name, workers, cache in (("one", 1, 0), ("two", 2, 0), ("kept", 2, stream.CACHE_BYTES)):
        monkeypatch.setattr(stream, "CACHE_BYTES", cache)
        monkeypatch.setattr(RecordedTable, "LOG", str(tmp_path / f"{name}.log"))
        runs[name] = netwright.train(spec(table, workers=workers), name=name, progress="quiet")
    one = runs["one"]
    metrics = {name: (run.path / "metrics.jsonl").read_text() for name, run in runs.items()}
    assert metrics["one"] == metrics["two"] == metrics["kept"]
    groups = set(range(ROWS // GROUP))  # every group holds training rows (70% of its 500)
    by_one, by_two = decoded_by(tmp_path / "one.log"), decoded_by(tmp_path / "two.log")
    assert by_one == {os.getpid(): groups}, by_one
    in_workers = set().union(*[gs for pid, gs in by_two.items() if pid != os.getpid()])
    assert in_workers == groups, by_two
    ev = netwright.evaluate(one, plots=False)
    assert ev["n"] == one.info.splits["test"]  # every test row, scored
    assert ev["metrics"]["accuracy"] > ev["baseline"]["metrics"]["accuracy"] + 0.15


@contextlib.contextmanager
def interrupt_at(step: int):
    from netwright.tasks import SupervisedTask

    original, count = SupervisedTask.train_step, {"n": 0}

    def step_then_signal(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        count["n"] += 1
        if count["n"] == step:
            signal.raise_signal(signal.SIGINT)
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SupervisedTask, "train_step", step_then_signal)
        yield


def test_an_interrupt_inside_an_epoch_resumes_at_the_same_batch(table: Path):
    full = netwright.train(spec(table), name="full", progress="quiet")
    per_epoch = full.read_json("train.json")["steps"] // 2
    with interrupt_at(per_epoch + 5), pytest.raises(TrainingInterrupted):
        netwright.train(spec(table), name="cut", progress="quiet")
    cut = Run.open("cut")
    assert cut.read_json("checkpoints/last.json")["batch"] == 5
    netwright.train(cut.path, resume=True, progress="quiet")
    assert (cut.path / "metrics.jsonl").read_text() == (full.path / "metrics.jsonl").read_text()
    a, _ = read_weights(full.path / "model.safetensors")
    b, _ = read_weights(cut.path / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_small_file_is_read_whole_unless_asked(table: Path):
    ds = load_dataset(load_spec({**spec(table), "data": {"name": "parquet", "path": str(table),
                                                          "target": "label"}}).data)
    assert type(ds.train).__name__ == "Split"  # stream: auto reads a file of 6,000 rows whole


CELLS = {  # what a column of each Arrow type may hold: missing cells, tokens, padding, new values
    "f": (st.one_of(st.none(), st.just(float("nan")), st.floats(-5, 5, width=32)), "float64"),
    "i": (st.one_of(st.none(), st.integers(-3, 3)), "int64"),
    "t": (st.sampled_from([None, "", "NA", "a", " b ", "c", "d", "null"]), "string"),
    "k": (st.one_of(st.none(), st.integers(0, 4)), "int64"),  # whole numbers read as categories
    "b": (st.one_of(st.none(), st.booleans()), "bool"),       # another type: through the cells
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), strategy=st.sampled_from(["median", "most_frequent", "constant", "error"]),
       embed_above=st.sampled_from([2, 50]))
def test_arrow_encoding_equals_the_cell_encoding(data, strategy, embed_above):
    """A streamed group is encoded in Arrow: the same matrix as the cell-by-cell encoding of the
    same rows, and the same error (one line naming the row) where that one refuses a cell."""
    import pyarrow as pa

    from netwright.data.preprocess import arrow_cells, encode_arrow, encode_table
    from netwright.data.tabular import table_dataset
    from netwright.errors import DataError

    def draw(n: int) -> pa.Table:
        cols = {name: pa.array(data.draw(st.lists(cells, min_size=n, max_size=n)), kind)
                for name, (cells, kind) in CELLS.items()}
        return pa.table({**cols, "y": pa.array([i % 2 for i in range(n)])})

    try:
        fitted = table_dataset(arrow_cells(draw(12)), "fit", "y", categorical=["t", "k", "b"], missing=strategy,
                               embed_above=embed_above).preprocess
    except DataError:
        assume(False)  # data.missing: error refuses a training table with a missing cell
    new = draw(8)

    def outcome(encode, table):
        try:
            return encode(fitted["columns"], table, "new")
        except DataError as e:
            return str(e)

    fast, slow = outcome(encode_arrow, new), outcome(encode_table, arrow_cells(new))
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
    else:
        np.testing.assert_array_equal(fast, slow)  # NaN where a fill comes later, on both


def test_a_streamed_regression_target_is_scaled_as_in_memory_and_learnt(tmp_path: Path):
    """A numeric target: scaled by the fitted rows' mean and deviation, learnt (R² well above the
    mean's 0), and predicted back in its own units."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 3))
    y = 100 + 20 * x[:, 0] - 10 * x[:, 1] + rng.normal(size=4000)
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "price": y}), path, row_group_size=500)
    raw = {**spec(path, target="price"), "train": {"epochs": 8, "batch_size": 64, "threads": 1}}
    run = netwright.train(raw, name="reg", runs_dir=tmp_path, progress="quiet")
    scale = run.info.preprocess["target"]
    fitted = y[split_codes_of(4000) == 0][:2000]
    assert scale["mean"] == pytest.approx(fitted.mean()) and scale["std"] == pytest.approx(fitted.std())
    ev = netwright.evaluate(run, plots=False)
    assert ev["metrics"]["r2"] > 0.9
    (row,) = netwright.predict(run, {"a": [1.0], "b": [0.0], "c": [0.0]})
    assert row["prediction"] == pytest.approx(120, abs=6)


def split_codes_of(n: int) -> np.ndarray:
    from netwright.data.stream import split_codes

    return split_codes(0, n, 0.15, 0.15, 0)


def same_run(full: Path, killed: Path) -> bool:
    a, _ = read_weights(full / "model.safetensors")
    b, _ = read_weights(killed / "model.safetensors")
    return (killed / "metrics.jsonl").read_text() == (full / "metrics.jsonl").read_text() and \
        a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_streamed_run_killed_inside_an_epoch_resumes_to_the_same_weights(table: Path, tmp_path: Path):
    """kill -9 of a run with two decoding workers after a checkpoint inside an epoch: --resume
    continues at that batch and ends with the metrics and weights of an uninterrupted run."""
    from conftest import killed_and_resumed

    raw = spec(table, workers=2)
    raw["train"] = {"epochs": 6, "batch_size": 32, "threads": 1, "checkpoint_interval": 1e-9}  # after every step
    full, killed = killed_and_resumed(raw, tmp_path, kill_at_epoch=2, kill_inside_epoch=True)
    assert json.loads((tmp_path / "killed.json").read_text())["batch"] > 0
    assert same_run(full, killed)


def test_a_streamed_job_of_two_processes_killed_resumes_to_the_same_weights(table: Path, tmp_path: Path):
    """--nproc 2: both ranks stream the same global batches and train on their shares; the job
    killed (every process, kill -9) after an epoch's checkpoint resumes in two processes to the
    metrics and weights of an uninterrupted two-process job."""
    from conftest import killed_and_resumed

    raw = spec(table, workers=1)
    raw["train"] = {"epochs": 4, "batch_size": 64, "threads": 1, "checkpoint_interval": 0}
    full, killed = killed_and_resumed(raw, tmp_path, kill_at_epoch=1, nproc=2)
    assert json.loads((full / "train.json").read_text())["processes"] == 2
    assert same_run(full, killed)


def test_a_big_csv_streams_from_a_parquet_copy_made_once(tmp_path: Path, monkeypatch):
    """stream: true on a CSV: converted once (block by block) into a Parquet copy in the cache,
    numbers stored as numbers, a column with text past the first block kept as text; its rows
    decode as the same CSV's cells written to Parquet as text do, and a second load reuses the copy
    while a changed file gets a new one."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from netwright.data import csv_cache
    from netwright.spec import DataSpec

    monkeypatch.setenv("NETWRIGHT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(csv_cache, "BLOCK", 16_000)  # blocks of a few hundred rows: text appears after the first
    rng = np.random.default_rng(0)
    n = 3000
    a = rng.normal(size=n)
    rows = ["a,b,code,kind,y"] + [
        f"{'' if i % 17 == 0 else f'{a[i]:.4f}'},{rng.normal():.3f},{'?' if i == 2500 else i % 7},"
        f"{'xyz'[i % 3]},{int(a[i] > 0)}" for i in range(n)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")

    def spec(p: Path, name: str) -> DataSpec:
        return DataSpec(name=name, path=str(p), target="y", stream=True, workers=1, val=0.1, test=0.1)

    streamed = load_dataset(spec(path, "csv"))
    (copy,) = (tmp_path / "cache" / "tables").glob("big-*.parquet")
    schema = pq.read_schema(copy)
    assert schema.field("a").type == pa.float64() and schema.field("code").type == pa.string()
    assert pq.ParquetFile(copy).metadata.num_row_groups > 1
    text = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={c: pa.string() for c in "a b code kind y".split()}, strings_can_be_null=False))
    pq.write_table(text, tmp_path / "text.parquet", row_group_size=1000)
    reference = load_dataset(spec(tmp_path / "text.parquet", "parquet"))
    assert streamed.info.preprocess["columns"] == reference.info.preprocess["columns"]
    for split in ("train", "val", "test"):
        ours, theirs = getattr(streamed, split), getattr(reference, split)
        assert len(ours) == len(theirs)
        for (x1, y1), (x2, y2) in zip(ours.batches(256), theirs.batches(256), strict=True):
            torch.testing.assert_close(x1, x2, rtol=0, atol=1e-6)
            assert torch.equal(y1, y2)
    made = copy.stat().st_mtime_ns
    load_dataset(spec(path, "csv"))
    assert copy.stat().st_mtime_ns == made and len(list(copy.parent.glob("*.parquet"))) == 1
    path.write_text("\n".join(rows[:2000]) + "\n")
    load_dataset(spec(path, "csv"))
    assert len(list(copy.parent.glob("big-*.parquet"))) == 2


def test_two_ranks_each_read_their_own_half_of_the_row_groups(table: Path, monkeypatch):
    """A streamed split read by rank 0 and rank 1 of 2: the groups each decodes (counted where they
    are decoded) are disjoint, together every group once, and hold about half the rows each; every
    row of a rank's groups comes once an epoch."""
    from netwright.data import stream

    decoded: list[int] = []
    real = stream.decode
    monkeypatch.setattr(stream, "decode", lambda g, state=None: decoded.append(g) or real(g, state))
    split = load_dataset(load_spec(spec(table, workers=1)).data).train
    split.state["cache"] = None  # decode every time: nothing kept from an earlier read
    seen, rows = [], []
    for rank in (0, 1):
        decoded.clear()
        n = sum(len(y) for _, y in split.batches(64, seed=3, shard=(rank, 2)))
        seen.append(set(decoded))
        rows.append(n)
        assert len(decoded) == len(seen[-1])  # each group once
    every = {g for g in range(len(split.source.rows)) if split.source.counts[g, split.code]}
    assert not seen[0] & seen[1] and seen[0] | seen[1] == every
    assert abs(len(seen[0]) - len(seen[1])) <= 1 and sum(rows) == len(split)
    assert rows == split.shard_rows(2) and abs(rows[0] - rows[1]) <= split.source.counts[:, split.code].max()


def test_a_streamed_job_of_two_processes_reading_apart_learns_as_one_process_does(table: Path, tmp_path: Path):
    """--nproc 2 on a streamed table, each rank reading its own row groups: the job's validation
    accuracy ends within 0.03 of one process's on the same data (the batches differ, the task not)."""
    import subprocess
    import sys

    import yaml

    raw = spec(table)
    raw["train"] = {"epochs": 3, "batch_size": 64, "threads": 1}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    finals = []
    for nproc in ("1", "2"):
        done = subprocess.run([sys.executable, "-m", "netwright", "train", str(tmp_path / "spec.yaml"), "--runs-dir",
                               str(tmp_path / "runs"), "--name", f"p{nproc}", "--quiet", "--nproc", nproc],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        history = [json.loads(line) for line in (tmp_path / "runs" / f"p{nproc}" / "metrics.jsonl").read_text().splitlines()]
        finals.append(history[-1]["val_accuracy"])
        summary = json.loads((tmp_path / "runs" / f"p{nproc}" / "train.json").read_text())
        if nproc == "2":  # each rank read its own groups: about half the training rows each
            halves = summary["rows_per_rank"]
            assert len(halves) == 2 and abs(halves[0] - halves[1]) <= 500 and sum(halves) > 0.6 * ROWS
    assert finals[0] > 0.7 and abs(finals[0] - finals[1]) <= 0.03, finals


def test_a_big_csv_whose_cache_cannot_be_written_is_one_line_exit_2(tmp_path: Path, cli, monkeypatch):
    """The cache folder for the CSV's Parquet copy cannot be made (a file stands in its way): one
    line naming the folder and NETWRIGHT_CACHE, exit 2, and the CSV untouched."""
    import yaml

    (tmp_path / "blocker").write_text("not a folder")
    monkeypatch.setenv("NETWRIGHT_CACHE", str(tmp_path / "blocker" / "cache"))
    path = tmp_path / "t.csv"
    path.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(300)))
    before = path.read_bytes()
    spec = {"data": {"name": "csv", "path": str(path), "target": "y", "stream": True},
            "model": {"name": "mlp"}, "train": {"epochs": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    r = cli("train", tmp_path / "spec.yaml", "--runs-dir", tmp_path / "runs")
    assert r.code == 2 and len(r.error_lines) == 1
    assert "cannot write its Parquet copy" in r.err and "NETWRIGHT_CACHE" in r.err
    assert path.read_bytes() == before and not (tmp_path / "runs").exists()
