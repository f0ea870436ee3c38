"""Tables anywhere: on an S3-compatible server (moto's, started here: a real HTTP server that
pyarrow's S3 client talks to with credentials from the environment), in a folder of Parquet files
with hive partitions, at an fsspec URL. Each is read as the same rows read locally."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

import netwright
from netwright.data import load_dataset
from netwright.spec import DataSpec


@pytest.fixture(scope="module")
def s3():
    """A running S3 server, the environment pointing at it, and a pyarrow client; yields the client."""
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    from pyarrow import fs as pafs

    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        boto3.client("s3").create_bucket(Bucket="data")
        yield pafs.S3FileSystem(endpoint_override=f"http://{host}:{port}", access_key="testing",
                                secret_key="testing", region="us-east-1")
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        server.stop()


def _table(n: int = 400):
    import pyarrow as pa

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    region = rng.choice(["north", "south"], n)
    return pa.table({"a": a.round(4), "b": np.where(rng.random(n) < 0.05, None, b.round(4)).tolist(),
                     "region": region, "y": np.where(a + (region == "north") > 0.5, "yes", "no")})


def _data(path: str, **extra) -> DataSpec:
    return DataSpec(name=Path(path).suffix.lstrip(".") or "parquet", path=path, target="y", val=0.0, test=0.25,
                    **extra)


def _same_rows(one, other) -> None:
    np.testing.assert_array_equal(one.train.x.numpy(), other.train.x.numpy())
    np.testing.assert_array_equal(one.test.y.numpy(), other.test.y.numpy())
    assert one.info.preprocess == other.info.preprocess


def test_a_table_on_s3_loads_as_the_same_file_read_locally(s3, tmp_path):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    t = _table()
    pq.write_table(t, tmp_path / "t.parquet")
    pq.write_table(t, "data/t.parquet", filesystem=s3)
    pacsv.write_csv(t, tmp_path / "t.csv")
    with s3.open_output_stream("data/t.csv") as out:
        out.write((tmp_path / "t.csv").read_bytes())
    _same_rows(load_dataset(_data("s3://data/t.parquet")), load_dataset(_data(str(tmp_path / "t.parquet"))))
    _same_rows(load_dataset(_data("s3://data/t.csv")), load_dataset(_data(str(tmp_path / "t.csv"))))


def test_a_folder_of_parquet_files_with_hive_partitions_is_one_table_locally_and_on_s3(s3, tmp_path):
    import pyarrow.parquet as pq

    t = _table()
    pq.write_to_dataset(t, str(tmp_path / "parts"), partition_cols=["region"])
    pq.write_to_dataset(t, "data/parts", partition_cols=["region"], filesystem=s3)
    assert len(list((tmp_path / "parts").glob("region=*/*.parquet"))) == 2
    local, remote = load_dataset(_data(str(tmp_path / "parts"))), load_dataset(_data("s3://data/parts"))
    _same_rows(local, remote)
    # the partition is a column again: its two values one-hot, every row read once
    assert {"region=north", "region=south"} <= set(local.info.feature_names)
    assert len(local.train) + len(local.test) == t.num_rows


def test_a_run_trains_from_s3_and_predicts_a_table_into_s3(s3, tmp_path, cli):
    import pyarrow.parquet as pq

    t = _table()
    pq.write_table(t, "data/train.parquet", filesystem=s3)
    spec = {"data": {"name": "parquet", "path": "s3://data/train.parquet", "target": "y"},
            "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 2, "batch_size": 32, "threads": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    run = netwright.train(str(tmp_path / "spec.yaml"), name="s3run", runs_dir=tmp_path / "runs", progress="quiet").home
    assert yaml.safe_load((run / "spec.yaml").read_text())["data"]["path"] == "s3://data/train.parquet"

    r = cli("predict", run, "s3://data/train.parquet", "--out", "s3://data/out/predictions.parquet")
    assert r.code == 0, r.err
    written = pq.read_table("data/out/predictions.parquet", filesystem=s3)
    pq.write_table(t, tmp_path / "train.parquet")
    r = cli("predict", run, tmp_path / "train.parquet", "--out", tmp_path / "local.parquet")
    assert r.code == 0, r.err
    assert written.equals(pq.read_table(tmp_path / "local.parquet"))  # the same predictions, row for row
    r = cli("predict", run, "s3://data/train.parquet", "--out", "s3://no-such-bucket/p.parquet")
    assert r.code == 2 and len(r.error_lines) == 1 and "s3://no-such-bucket/p.parquet: cannot be written" in r.err


@pytest.mark.parametrize("url, says", [("s3://no-such-bucket/t.parquet", "no such file, bucket or key"),
                                       ("s3://data/no-such-key.csv", "no such file, bucket or key"),
                                       ("nosuchscheme://x/t.csv", "no file system reads this URL")])
def test_a_missing_bucket_key_or_scheme_is_one_line_exit_2(s3, tmp_path, cli, url, says):
    spec = {"data": {"name": Path(url).suffix.lstrip("."), "path": url, "target": "y"},
            "model": {"name": "mlp"}, "train": {"epochs": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    r = cli("train", tmp_path / "spec.yaml", "--runs-dir", tmp_path / "runs")
    assert r.code == 2
    assert len(r.error_lines) == 1 and says in r.err and url in r.err


def test_an_fsspec_url_reads_a_table_from_memory(tmp_path):
    import fsspec
    import pyarrow.csv as pacsv

    pacsv.write_csv(_table(), tmp_path / "t.csv")
    with fsspec.open("memory://tables/t.csv", "wb") as f:
        f.write((tmp_path / "t.csv").read_bytes())
    _same_rows(load_dataset(_data("memory://tables/t.csv")), load_dataset(_data(str(tmp_path / "t.csv"))))
