"""A folder of photos as they come: mixed sizes met by a fit policy (stretch, crop, pad) that
predict repeats, an unreadable file named or skipped and counted, decoding in worker processes
giving the same arrays as one process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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
    with pytest.raises(DataError, match="broken.png: cannot read this image"):
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
