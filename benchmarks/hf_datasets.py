"""Why the streamed tables read Parquet with pyarrow, not Hugging Face ``datasets``: plain
row-group reads against ``datasets`` on the same generated table, each method in a fresh
subprocess (peak RSS per method, a fresh ``datasets`` cache each time, deleted after), alternated
A B C ..., medians.

  A       pyarrow ``ParquetFile(path).read_row_group(g)``, a row group at a time (netwright's way)
  B       ``datasets.load_dataset("parquet", ...)``: its Arrow cache is built first, then
          ``ds.with_format("numpy").iter(batch_size=...)``
  C       ``load_dataset(..., streaming=True).iter(batch_size=...)`` (an IterableDataset)
  Cnp     C with ``with_format("numpy")``
  Carrow  C with ``with_format("arrow")`` and ``ParquetFragmentScanOptions(pre_buffer=False)``

Every batch becomes the same float32 matrix of the 12 float columns (nulls -> 0).

``datasets`` is not a netwright dependency: run this in a separate environment,

    python3 -m venv /tmp/hfvenv && /tmp/hfvenv/bin/pip install datasets pyarrow numpy psutil
    /tmp/hfvenv/bin/python benchmarks/hf_datasets.py --rows 4000000 --methods A,B,C,Cnp
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROW_GROUP = 131072
N_FLOAT, N_INT, N_CAT = 12, 4, 3
FLOAT_COLS = [f"f{i}" for i in range(N_FLOAT)]
DEFAULT_PATH = "/tmp/hfbench/table.parquet"


# ----------------------------------------------------------------------------
# data generation
# ----------------------------------------------------------------------------
def generate(path, rows, seed=0):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    cats = [[f"c{j}_v{k:02d}" for k in range(20)] for j in range(N_CAT)]
    schema = pa.schema(
        [(c, pa.float64()) for c in FLOAT_COLS]
        + [(f"i{i}", pa.int64()) for i in range(N_INT)]
        + [(f"s{j}", pa.string()) for j in range(N_CAT)]
        + [("target", pa.int64())]
    )
    tmp = path + ".tmp"
    t0 = time.perf_counter()
    with pq.ParquetWriter(tmp, schema) as w:
        done = 0
        while done < rows:
            n = min(ROW_GROUP, rows - done)
            cols = []
            for _ in range(N_FLOAT):
                v = rng.standard_normal(n)
                mask = rng.random(n) < 0.10
                cols.append(pa.array(v, mask=mask, type=pa.float64()))
            cols.append(pa.array(np.arange(done, done + n, dtype=np.int64)))  # id
            cols.append(pa.array(rng.integers(0, 1000, n, dtype=np.int64)))
            cols.append(pa.array(rng.integers(-(10**6), 10**6, n, dtype=np.int64)))
            cols.append(pa.array(rng.integers(0, 2**40, n, dtype=np.int64)))
            for j in range(N_CAT):
                idx = rng.integers(0, 20, n)
                mask = rng.random(n) < 0.10
                vals = np.array(cats[j], dtype=object)[idx]
                cols.append(pa.array(vals, mask=mask, type=pa.string()))
            cols.append(pa.array(rng.integers(0, 2, n, dtype=np.int64)))
            w.write_table(pa.Table.from_arrays(cols, schema=schema),
                          row_group_size=ROW_GROUP)
            done += n
    os.replace(tmp, path)
    print(f"generated {path}: {rows} rows, {os.path.getsize(path)/2**20:.1f} MiB "
          f"in {time.perf_counter()-t0:.1f}s", flush=True)


# ----------------------------------------------------------------------------
# child-side measurement
# ----------------------------------------------------------------------------
def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _io_write_bytes():
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def _matrix_from_numpy_batch(batch):
    import numpy as np
    cols = []
    for c in FLOAT_COLS:
        a = np.asarray(batch[c], dtype=np.float64)
        cols.append(np.nan_to_num(a, nan=0.0))
    return np.column_stack(cols).astype(np.float32, copy=False)


def _matrix_from_arrow_table(t):
    import numpy as np
    return np.column_stack(
        [t.column(c).fill_null(0).to_numpy(zero_copy_only=False) for c in FLOAT_COLS]
    ).astype(np.float32, copy=False)


def _matrix_from_python_batch(batch):
    import numpy as np
    cols = []
    for c in FLOAT_COLS:
        a = np.array([0.0 if x is None else x for x in batch[c]], dtype=np.float64)
        cols.append(a)
    return np.column_stack(cols).astype(np.float32, copy=False)


def child(method, path, cache_dir):
    t0 = time.perf_counter()
    res = {"method": method}
    rows = 0
    checksum = 0.0
    first = None
    if method == "A":
        import pyarrow.parquet as pq
        pf = pq.ParquetFile(path)
        res["load_s"] = time.perf_counter() - t0
        batches = (pf.read_row_group(g) for g in range(pf.num_row_groups))
        conv = _matrix_from_arrow_table
    elif method == "B":
        import datasets
        ds = datasets.load_dataset("parquet", data_files=path, split="train",
                                   cache_dir=cache_dir)
        res["load_s"] = time.perf_counter() - t0
        batches = ds.with_format("numpy").iter(batch_size=ROW_GROUP)
        conv = _matrix_from_numpy_batch
    elif method in ("C", "Cnp", "Carrow"):
        import datasets
        kw = {}
        if method == "Carrow":
            import pyarrow.dataset as pds
            kw["fragment_scan_options"] = pds.ParquetFragmentScanOptions(pre_buffer=False)
        ids = datasets.load_dataset("parquet", data_files=path, split="train",
                                    streaming=True, cache_dir=cache_dir, **kw)
        res["load_s"] = time.perf_counter() - t0
        if method == "Cnp":
            ids = ids.with_format("numpy")
            conv = _matrix_from_numpy_batch
        elif method == "Carrow":
            ids = ids.with_format("arrow")
            conv = _matrix_from_arrow_table
        else:
            conv = _matrix_from_python_batch
        batches = ids.iter(batch_size=ROW_GROUP)
    else:
        raise SystemExit(f"unknown method {method}")
    for batch in batches:
        m = conv(batch)
        if first is None:
            first = time.perf_counter() - t0
        rows += m.shape[0]
        checksum += float(m[:, 0].sum())
        del batch, m
    total = time.perf_counter() - t0
    res.update(first_s=first, total_s=total, rows=rows, rows_per_s=rows / total,
               peak_rss_mib=_peak_rss_mib(), proc_write_bytes=_io_write_bytes(),
               checksum=round(checksum, 3))
    print("RESULT " + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------
# parent-side orchestration
# ----------------------------------------------------------------------------
def du_bytes(d):
    total = 0
    for root, _dirs, files in os.walk(d):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def run_one(method, path, timeout):
    cache = tempfile.mkdtemp(prefix=f"hfcache_{method}_", dir=os.path.dirname(path))
    env = dict(os.environ)
    env.update(HF_HOME=os.path.join(cache, "hf_home"),
               HF_DATASETS_CACHE=os.path.join(cache, "datasets"),
               HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1",
               OMP_NUM_THREADS="2")
    try:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", method,
                            "--path", path, "--cache-dir", os.path.join(cache, "datasets")],
                           env=env, capture_output=True, text=True, timeout=timeout)
        line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
        if p.returncode != 0 or not line:
            sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
            raise RuntimeError(f"method {method} failed rc={p.returncode}")
        res = json.loads(line[-1][7:])
        res["disk_bytes"] = du_bytes(cache)
        return res
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--path", default=DEFAULT_PATH)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="A,B,C", help="comma list from A,B,C,Cnp,Carrow")
    ap.add_argument("--regen", action="store_true", help="regenerate the parquet file")
    ap.add_argument("--cleanup", action="store_true", help="delete the parquet file at the end")
    ap.add_argument("--timeout", type=int, default=1800, help="per-run timeout (s)")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        child(a.child, a.path, a.cache_dir)
        return

    os.makedirs(os.path.dirname(a.path), exist_ok=True)
    if a.regen or not os.path.exists(a.path):
        generate(a.path, a.rows)
    else:
        import pyarrow.parquet as pq
        n = pq.ParquetFile(a.path).metadata.num_rows
        if n != a.rows:
            print(f"existing file has {n} rows != {a.rows}; regenerating", flush=True)
            generate(a.path, a.rows)
    import datasets
    import pyarrow
    print(f"python {sys.version.split()[0]}  datasets {datasets.__version__}  "
          f"pyarrow {pyarrow.__version__}", flush=True)
    size_mib = os.path.getsize(a.path) / 2**20
    print(f"file {a.path}: {size_mib:.1f} MiB, {a.rows} rows", flush=True)

    methods = a.methods.split(",")
    results = {m: [] for m in methods}
    t_all = time.perf_counter()
    for r in range(a.repeats):
        for m in methods:
            res = run_one(m, a.path, a.timeout)
            results[m].append(res)
            print(f"rep {r} {m}: load {res['load_s']:.2f}s first {res['first_s']:.2f}s "
                  f"total {res['total_s']:.2f}s {res['rows_per_s']:.0f} rows/s "
                  f"rss {res['peak_rss_mib']:.0f} MiB disk {res['disk_bytes']/2**20:.1f} MiB "
                  f"(proc write_bytes {res['proc_write_bytes']/2**20:.1f} MiB) "
                  f"chk {res['checksum']}", flush=True)
    print(f"all runs: {time.perf_counter()-t_all:.0f}s", flush=True)

    med = lambda m, k: statistics.median(x[k] for x in results[m])
    print(f"\nMedians over {a.repeats} runs, {a.rows} rows, file {size_mib:.1f} MiB\n")
    print("| method | load s | first batch s | total s | rows/s | peak RSS MiB | extra disk MiB |")
    print("|---|---|---|---|---|---|---|")
    for m in methods:
        print(f"| {m} | {med(m,'load_s'):.2f} | {med(m,'first_s'):.2f} | {med(m,'total_s'):.2f} "
              f"| {med(m,'rows_per_s'):,.0f} | {med(m,'peak_rss_mib'):.0f} "
              f"| {med(m,'disk_bytes')/2**20:.1f} |")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"rows": a.rows, "file_mib": size_mib, "results": results}, f, indent=1)
    if a.cleanup:
        os.remove(a.path)


if __name__ == "__main__":
    main()
