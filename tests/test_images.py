"""A folder of photos as they come: mixed sizes met by a fit policy (stretch, crop, pad) that
predict repeats, an unreadable file named or skipped and counted, decoding in worker processes
giving the same arrays as one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import netwright
from netwright.data import load_dataset
from netwright.errors import DataError
from netwright.spec import load_spec


def make_folder(root: Path, n: int = 12, broken: bool = False) -> Path:
    """Two classes of mixed-size RGB pictures: 'bright' ones and 'dark' ones."""
    rng = np.random.default_rng(0)
    for label, level in (("bright", 200), ("dark", 40)):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            w, h = int(rng.integers(20, 60)), int(rng.integers(20, 60))
            a = np.clip(rng.normal(level, 20, size=(h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / label / f"{i}.png")
    if broken:
        (root / "dark" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut off")
    return root


def load(root: Path, **data) -> netwright.Dataset:
    return load_dataset(load_spec({"data": {"name": "images", "path": str(root), **data},
                                   "model": {"name": "cnn"}}).data)


def test_each_fit_sizes_an_image_as_it_says(tmp_path: Path):
    from netwright.data.images import fit_image

    im = Image.new("RGB", (40, 20), (255, 255, 255))  # wide, white
    im.paste((0, 0, 0), (0, 0, 10, 20))  # a black band on the left quarter
    assert fit_image(im, 16, 16, "stretch").size == (16, 16)
    cropped = np.asarray(fit_image(im, 16, 16, "crop"))  # the centre 20x20: no black band left
    assert cropped.shape == (16, 16, 3) and cropped.min() > 200
    padded = np.asarray(fit_image(im, 16, 16, "pad"))  # 16x8 of picture between black bars
    assert padded[:4].max() == 0 and padded[-4:].max() == 0 and padded[8, 8].max() == 255


def test_mixed_sizes_need_image_size_and_predict_sizes_inputs_the_same_way(tmp_path: Path):
    root = make_folder(tmp_path / "photos")
    with pytest.raises(DataError, match="set data.image_size"):
        load(root)
    run = netwright.train({"data": {"name": "images", "path": str(root), "image_size": [16, 16], "fit": "pad",
                                    "val": 0.2, "test": 0.2},
                           "model": {"name": "cnn", "channels": [4], "hidden": []}, "train": {"epochs": 3}},
                          name="photos", progress="quiet")
    data = run.load_data()
    assert data.info.input_shape == (3, 16, 16) and data.info.preprocess["fit"] == "pad"
    # a file predicted from disk is sized exactly as the loader sized it
    from netwright.data.inputs import encode_inputs

    probe = root / "bright" / "0.png"
    full = load(root, image_size=[16, 16], fit="pad", val=0.2, test=0.2)
    idx = [i for i, p in enumerate(sorted((root / "bright").iterdir()) + sorted((root / "dark").iterdir()))
           if p == probe][0]
    raw = np.concatenate([s.x.numpy() for s in (full.train, full.val, full.test)])  # normalised, all splits
    ours = encode_inputs(data.info, probe)[0]
    assert any(np.allclose(ours, r, atol=1e-5) for r in raw), idx
    assert netwright.predict(run, probe)[0]["label"] in ("bright", "dark")


def test_an_unreadable_image_is_named_or_skipped_and_counted(tmp_path: Path):
    root = make_folder(tmp_path / "photos", n=6, broken=True)
    with pytest.raises(DataError, match="broken.png: cannot read this image.*data.on_error: skip leaves"):
        load(root, image_size=[8, 8])
    ds = load(root, image_size=[8, 8], on_error="skip")
    assert len(ds.train) + len(ds.val) + len(ds.test) == 12
    assert "1 unreadable image left out" in ds.info.preprocess["notes"][0]


def test_worker_processes_decode_the_same_arrays(tmp_path: Path):
    root = make_folder(tmp_path / "photos", n=8)
    one = load(root, image_size=[12, 12], fit="crop", workers=1)
    two = load(root, image_size=[12, 12], fit="crop", workers=2)
    for a, b in ((one.train, two.train), (one.val, two.val), (one.test, two.test)):
        assert np.array_equal(a.x.numpy(), b.x.numpy()) and np.array_equal(a.y.numpy(), b.y.numpy())
    assert one.info.fingerprint == two.info.fingerprint


def test_a_worker_that_dies_is_one_line_naming_its_files(tmp_path: Path, monkeypatch):
    """A decoding process killed mid-load (SIGKILL, as the out-of-memory killer does)."""
    import os
    import signal

    from netwright.data import images as images_module

    root = make_folder(tmp_path / "photos", n=8)
    real = images_module._decode

    def dies_on_the_third(job):
        if job[0].endswith("3.png") and "dark" in job[0]:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(job)

    monkeypatch.setattr(images_module, "_decode", dies_on_the_third)  # the forked workers inherit it
    with pytest.raises(DataError, match=r"a worker process died \(killed, or out of memory\) while the images "
                                        r"from .*dark.* on were being decoded.*workers: 1"):
        load(root, image_size=[8, 8], workers=2)


# ---------------------------------------------------------------------- a folder streamed


def every_row(split) -> tuple[np.ndarray, np.ndarray]:
    """All of a split's examples, streamed or in memory, in a canonical order."""
    if hasattr(split, "batches"):
        xs, ys = zip(*split.batches(64))
        x, y = np.concatenate([b.numpy() for b in xs]), np.concatenate([b.numpy() for b in ys])
    else:
        x, y = split.x.numpy(), split.y.numpy()
    order = np.lexsort(x.reshape(len(x), -1).T[::-1])
    return x[order], y[order]


def test_a_streamed_folder_holds_the_in_memory_loaders_images(tmp_path: Path):
    """Streamed (decoded a block at a time) or read whole, a folder gives the same examples and
    labels, sized alike; only the split (random against stratified) differs."""
    root = make_folder(tmp_path / "photos", n=20)
    kw = {"image_size": [8, 8], "fit": "crop", "normalize": False, "val": 0.25, "test": 0.25}
    whole = load(root, stream=False, **kw)
    streamed = load(root, stream=True, workers=1, **kw)
    assert type(streamed.train).__name__ == "StreamedSplit" and "stream" in streamed.info.preprocess
    assert streamed.info.input_shape == whole.info.input_shape == (3, 8, 8)
    assert sum(streamed.info.splits.values()) == 40
    a = [every_row(s) for s in (whole.train, whole.val, whole.test)]
    b = [every_row(s) for s in (streamed.train, streamed.val, streamed.test)]
    xa, ya = np.concatenate([x for x, _ in a]), np.concatenate([y for _, y in a])
    xb, yb = np.concatenate([x for x, _ in b]), np.concatenate([y for _, y in b])
    oa, ob = np.lexsort(xa.reshape(40, -1).T[::-1]), np.lexsort(xb.reshape(40, -1).T[::-1])
    assert np.array_equal(xa[oa], xb[ob]) and np.array_equal(ya[oa], yb[ob])


def test_a_streamed_folder_trains_the_same_with_one_decoding_process_or_two(tmp_path: Path):
    root = make_folder(tmp_path / "photos", n=40)
    metrics = []
    for workers in (1, 2):
        run = netwright.train({"data": {"name": "images", "path": str(root), "image_size": [12, 12], "stream": True,
                                        "workers": workers, "fit_rows": 40},
                               "model": {"name": "cnn", "channels": [4], "hidden": []},
                               "train": {"epochs": 2, "batch_size": 16, "threads": 1, "augment": {"flip": True}}},
                              name=f"w{workers}", runs_dir=tmp_path / "runs", progress="quiet")
        metrics.append(run.file("metrics.jsonl").read_text())
        assert run.info.preprocess["stream"]["fitted_on_rows"] == 40
    assert metrics[0] == metrics[1]
    # predict sizes and normalises a file as the stream did
    assert netwright.predict(run, root / "bright" / "0.png")[0]["label"] in ("bright", "dark")


def test_an_unreadable_image_in_a_streamed_folder_is_named_or_skipped_and_counted(tmp_path: Path):
    root = make_folder(tmp_path / "photos", n=6, broken=True)
    with pytest.raises(DataError, match="broken.png: cannot read this image"):
        load(root, image_size=[8, 8], stream=True)
    # a file cut after its header: only its structure says so
    (root / "bright" / "cut.png").write_bytes((root / "bright" / "0.png").read_bytes()[:60])
    ds = load(root, image_size=[8, 8], stream=True, on_error="skip")
    assert sum(ds.info.splits.values()) == 12
    assert "2 unreadable images left out" in ds.info.preprocess["notes"][0]


def test_fashion_mnist_streamed_keeps_its_published_test_split():
    from netwright.data.fashion import FASHION_DIR

    if not FASHION_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make test installs it)")
    data = lambda stream: load_dataset(load_spec({"data": {"name": "fashion_mnist", "subset": 1200,  # noqa: E731
                                                           "stream": stream}, "model": {"name": "cnn"}}).data)
    whole, streamed = data(False), data(True)
    assert streamed.info.splits["test"] == len(whole.test) == 200
    assert streamed.info.splits["train"] + streamed.info.splits["val"] == 1200
    # the published first 200 test images, each once, normalised with the streamed statistics
    pre = streamed.info.preprocess
    mean, std = np.float32(pre["mean"][0]), np.float32(pre["std"][0])
    raw = whole.test.x.numpy() * np.float32(whole.info.preprocess["std"][0]) + np.float32(whole.info.preprocess["mean"][0])
    x, y = every_row(streamed.test)
    mine_x, mine_y = every_row(type("S", (), {"x": torch.from_numpy((raw - mean) / std), "y": whole.test.y})())
    assert np.allclose(x, mine_x, atol=1e-4) and np.array_equal(y, mine_y)


def test_a_folder_is_predicted_in_bulk_into_a_file_and_a_stopped_job_resumes(tmp_path: Path):
    import subprocess
    import sys

    import pyarrow.parquet as pq

    root = make_folder(tmp_path / "photos", n=10)
    run = netwright.train({"data": {"name": "images", "path": str(root), "image_size": [8, 8]},
                           "model": {"name": "cnn", "channels": [4], "hidden": []}, "train": {"epochs": 1}},
                          name="photos", runs_dir=tmp_path / "runs", progress="quiet")
    out = tmp_path / "preds.parquet"

    def stop_after_the_first_chunk(done, total):
        assert total == 20
        if done == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        netwright.predict_file(run, root, out, chunk_rows=6, progress=stop_after_the_first_chunk)
    assert not out.exists()
    summary = netwright.predict_file(run, root, out, chunk_rows=6)
    assert summary["resumed"] == 1 and summary["rows"] == 20
    rows = pq.read_table(out).to_pylist()
    assert [r["file"] for r in rows] == sorted(f"{c}/{i}.png" for c in ("bright", "dark") for i in range(10))
    # each row is what predicting that file alone gives
    alone = netwright.predict(run, root / "dark" / "3.png")[0]
    row = next(r for r in rows if r["file"] == "dark/3.png")
    assert row["label"] == alone["label"] and row["p_dark"] == pytest.approx(alone["probabilities"]["dark"], abs=1e-6)
    # the CLI: the same rows as CSV; a folder without --out FILE says how to predict it
    cli = [sys.executable, "-m", "netwright", "predict", str(run.home), str(root)]
    r = subprocess.run(cli + ["--out", str(tmp_path / "preds.csv")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "preds.csv").read_text().splitlines()[1].startswith("bright/0.png,")
    r = subprocess.run(cli, capture_output=True, text=True)
    assert r.returncode == 2 and "a folder; predict every image under it into a file" in r.stderr
    # a broken file: the others predicted, it written with its error (exit 2, counted), or left out
    (root / "dark" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut off")
    r = subprocess.run(cli + ["--out", str(tmp_path / "with_broken.csv")], capture_output=True, text=True)
    assert r.returncode == 2 and "1 row could not be predicted (written with an error column)" in r.stderr, r.stderr
    lines = (tmp_path / "with_broken.csv").read_text().splitlines()
    assert len(lines) == 22 and any(ln.startswith("dark/broken.png,") and "cannot read this image" in ln for ln in lines)
    with pytest.raises(DataError, match="broken.png: cannot read this image.*--on-error skip leaves such a file out"):
        netwright.predict_file(run, root, tmp_path / "stop.parquet", on_error="stop")
    assert not (tmp_path / "stop.parquet.parts").exists()
    summary = netwright.predict_file(run, root, tmp_path / "skip.parquet", on_error="skip")
    assert summary["rows"] == 20 and summary["failed"] == 1
