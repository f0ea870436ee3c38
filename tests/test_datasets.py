from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netwright import DATASETS, DataError, load_dataset, load_spec
from conftest import TINY_SPEECH, needs_packages

BUILTIN = [e.name for e in DATASETS.entries() if not any(f.is_required() for f in e.params.model_fields.values())]


def data_spec(**data):
    return load_spec({"data": data, "model": {"name": "mlp"}}).data


def test_builtin_list_is_what_the_issue_promises():
    assert set(BUILTIN) >= {"digits", "iris", "wine", "breast_cancer", "diabetes", "mnist1d"}
    assert {"csv", "npz", "images", "text"} <= set(DATASETS.names())


# keys per dataset: karate club has two labelled members (nothing to hold out for validation); the
# spoken digits are synthesised for ten voices instead of 37 (the same loader and the set that
# test_applications uses, made once a session: seconds instead of 70 s; the whole set is made by
# examples/spoken_digits_cnn.yaml)
SPLITS = {"karate_club": {"val": 0}, "spoken_digits": {k: v for k, v in TINY_SPEECH.items() if k != "name"},
          "fashion_segments": {"scenes": 300, "test_scenes": 50}}
# the built-in sets made from Debian packages (tools/system-deps)
NEEDS = {"fashion_mnist": ["dataset-fashion-mnist"], "fashion_scenes": ["dataset-fashion-mnist"],
         "fashion_segments": ["dataset-fashion-mnist"],
         "spoken_digits": ["espeak-ng", "flite"], "bible_en_es": ["sword-text-kjv", "sword-text-sparv"]}


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_packages(*NEEDS.get(n, []))) for n in BUILTIN])
def test_every_builtin_dataset_loads_with_consistent_info(name):
    ds = load_dataset(data_spec(name=name, **SPLITS.get(name, {})))
    info = ds.info
    assert info.splits["train"] == len(ds.train) and info.splits["val"] == (len(ds.val) if ds.val else 0)
    assert info.splits["test"] == len(ds.test)
    for split in filter(None, (ds.train, ds.val, ds.test)):
        assert tuple(split.x.shape[1:]) == info.input_shape
        if info.modality == "tokens":  # token ids inside the vocabulary
            assert split.x.dtype == torch.int64 and 0 <= int(split.x.min()) and int(split.x.max()) < len(info.vocab)
        else:
            assert split.x.dtype == torch.float32 and torch.isfinite(split.x).all()
        assert len(split.x) == len(split.y)
        for values in split.groups.values():
            assert len(values) == len(split.y)
    if info.modality == "tokens":
        assert len(info.fingerprint) == 16 and info.source and len(info.vocab) > 4
        if info.task in ("language_model", "translation"):  # targets are token ids too
            assert ds.train.y.dtype == torch.int64 and int(ds.train.y.max()) < len(info.vocab)
            return
    if info.task == "detection":  # targets are (class, x1, y1, x2, y2) boxes, padded with -1
        boxes = ds.train.y[ds.train.y[..., 0] >= 0]
        assert int(boxes[:, 0].max()) < info.num_classes and (boxes[:, 1:3] < boxes[:, 3:]).all()
        assert int(boxes[:, 1:].min()) >= 0 and int(boxes[:, 3:].max()) <= min(info.input_shape[1:])
        return
    if info.task == "segmentation":  # targets are a class per pixel of the image, 0 the background
        assert ds.train.y.dtype == torch.int64 and tuple(ds.train.y.shape[1:]) == info.input_shape[1:]
        assert int(ds.train.y.min()) == 0 and int(ds.train.y.max()) < info.num_classes == len(info.class_names)
        return
    if info.task == "control":  # targets are episode seeds; test episodes are never trained on
        assert ds.train.y.dtype == torch.int64 and not set(ds.train.y.tolist()) & set(ds.test.y.tolist())
        assert info.num_classes == len(info.class_names) >= 2 and "mean" not in info.preprocess
        return
    if info.task == "classification":
        assert info.num_classes == len(info.class_names) >= 2
        assert int(ds.train.y.min()) >= 0 and int(ds.train.y.max()) < info.num_classes
        assert info.stratified
    else:
        assert ds.train.y.dtype == torch.float32 and "target" in info.preprocess
    if info.modality == "tokens":
        return
    # normalisation statistics come from the train split only: train is standardised exactly
    # (one-hot columns of categorical features stay 0/1)
    x = ds.train.x.double()
    axes = (0,) if info.modality == "tabular" else (0, *range(2, x.dim()))
    means = x.mean(dim=axes)
    if info.modality == "tabular":
        from netwright.data.preprocess import numeric_mask

        means = means[torch.from_numpy(numeric_mask(info.preprocess))]
    assert means.numel() == 0 or means.abs().max() < 1e-4  # (node data: one-hot columns only)
    assert len(info.fingerprint) == 16 and info.source


def test_splits_are_deterministic_and_stratified():
    a = load_dataset(data_spec(name="digits"))
    b = load_dataset(data_spec(name="digits"))
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.train.y, b.train.y)
    c = load_dataset(data_spec(name="digits", split_seed=1))
    assert not torch.equal(a.test.y, c.test.y)
    # stratified: each class's share of the test split is within one example of its overall share
    counts = np.bincount(np.concatenate([a.train.y, a.val.y, a.test.y]), minlength=10)
    test_counts = np.bincount(a.test.y.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - counts * len(a.test) / counts.sum()) <= 1)


def test_mnist1d_keeps_its_published_test_split():
    ds = load_dataset(data_spec(name="mnist1d", val=0.1))
    assert ds.info.splits == {"train": 3600, "val": 400, "test": 1000}
    assert ds.info.input_shape == (1, 40)


def test_diabetes_carries_sex_as_a_sensitive_group():
    ds = load_dataset(data_spec(name="diabetes"))
    assert ds.info.sensitive == ["sex"] and set(ds.train.groups["sex"]) == {"1", "2"}
    assert ds.info.task == "regression"


# ---------------------------------------------------------------------- CSV


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def people_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = ["age,colour,group,income,label"]
    for i in range(60):
        colour = ["red", "green", "blue"][i % 3]
        rows.append(f"{20 + i % 40},{colour},{'a' if i % 2 else 'b'},{rng.normal(50, 10):.2f},{'yes' if i % 3 else 'no'}")
    return write_csv(tmp_path / "people.csv", rows)


def test_csv_numeric_categorical_and_sensitive_columns(people_csv: Path):
    ds = load_dataset(data_spec(name="csv", path=str(people_csv), target="label", sensitive=["group"]))
    info = ds.info
    assert info.class_names == ["no", "yes"]
    assert info.feature_names == ["age", "colour=blue", "colour=green", "colour=red", "income"]
    assert info.sensitive == ["group"] and "group" not in info.feature_names
    # one-hot columns stay 0/1 (no normalisation), numeric ones are standardised
    onehot = ds.train.x[:, 1:4]
    assert set(onehot.unique().tolist()) <= {0.0, 1.0} and torch.all(onehot.sum(1) == 1)
    assert abs(float(ds.train.x[:, 0].mean())) < 1e-5


@pytest.mark.parametrize("rows,message", [
    (["a,b", "1,2", "3,4"], "no column 'label'"),
    (["a,label", "1,x", "oops,y", "3,x", "4,y", "5,x"], "numeric column 'a' row 2 holds text 'oops'"),
    (["a,label", "1,x", "inf,y", "3,x", "4,y"], "row 2 is inf"),
    (["a,label"], "no data rows"),
    (["a,label", "1,x,3"], "line 2 has 3 fields"),
])
def test_csv_bad_input_is_named(tmp_path: Path, rows, message):
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        load_dataset(data_spec(name="csv", path=str(path), target="label"))


def test_empty_csv_file(tmp_path: Path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_dataset(data_spec(name="csv", path=str(path), target="label"))


# ---------------------------------------------------------------------- NPZ / NPY


def test_npz_infers_modality_task_and_keeps_a_given_test_split(tmp_path: Path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "seq.npz", x=rng.normal(size=(50, 2, 12)), y=np.arange(50) % 3,
             x_test=rng.normal(size=(10, 2, 12)), y_test=np.arange(10) % 3)
    ds = load_dataset(data_spec(name="npz", path=str(tmp_path / "seq.npz"), val=0.2))
    assert ds.info.modality == "sequence" and ds.info.task == "classification" and ds.info.num_classes == 3
    assert ds.info.splits == {"train": 40, "val": 10, "test": 10}
    np.save(tmp_path / "x.npy", rng.normal(size=(40, 5)))
    np.save(tmp_path / "y.npy", rng.normal(size=40))
    ds = load_dataset(data_spec(name="npz", path=str(tmp_path / "x.npy"), target_path=str(tmp_path / "y.npy")))
    assert ds.info.modality == "tabular" and ds.info.task == "regression"


@pytest.mark.parametrize("y,message", [
    (np.array([0, 1, 2, -1] * 10), "label -1 is out of range"),
    (np.array([0, 1, 2, 7] * 10), "label 7 is out of range"),
])
def test_npz_labels_out_of_range(tmp_path: Path, y, message):
    np.savez(tmp_path / "d.npz", x=np.zeros((40, 3)), y=y)
    with pytest.raises(DataError, match=message):
        load_dataset(data_spec(name="npz", path=str(tmp_path / "d.npz"), class_names=["a", "b", "c"]))


def test_npz_nan_empty_and_pickle_are_refused(tmp_path: Path):
    x = np.ones((20, 3))
    x[4, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(20) % 2)
    with pytest.raises(DataError, match=r"holds nan at index \(4, 1\)"):
        load_dataset(data_spec(name="npz", path=str(tmp_path / "nan.npz")))
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 3)), y=np.zeros(0, dtype=int))
    with pytest.raises(DataError, match="empty"):
        load_dataset(data_spec(name="npz", path=str(tmp_path / "empty.npz")))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="no pickle"):
        load_dataset(data_spec(name="npz", path=str(tmp_path / "obj.npy"), target_path=str(tmp_path / "obj.npy")))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="not a readable NumPy file"):
        load_dataset(data_spec(name="npz", path=str(tmp_path / "junk.npz")))


# ---------------------------------------------------------------------- images and text


def make_image_folder(root: Path, size=(10, 12), sizes=None) -> Path:
    rng = np.random.default_rng(0)
    for c, cls in enumerate(["cat", "dog"]):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            w, h = (sizes or {}).get((cls, i), size)
            arr = (rng.random((h, w)) * 100 + 100 * c).astype(np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


def test_image_folder_one_subfolder_per_class(tmp_path: Path):
    root = make_image_folder(tmp_path / "imgs")
    ds = load_dataset(data_spec(name="images", path=str(root), val=0.17, test=0.17))
    assert ds.info.class_names == ["cat", "dog"] and ds.info.input_shape == (1, 12, 10)


def test_image_folder_with_mixed_sizes_asks_for_image_size(tmp_path: Path):
    root = make_image_folder(tmp_path / "imgs", sizes={("dog", 3): (9, 9)})
    with pytest.raises(DataError, match=r"set data.image_size: \[12, 10\]"):
        load_dataset(data_spec(name="images", path=str(root)))
    ds = load_dataset(data_spec(name="images", path=str(root), image_size=[12, 10], val=0.17, test=0.17))
    assert ds.info.input_shape == (1, 12, 10)


def test_image_folder_truncated_file(tmp_path: Path):
    root = make_image_folder(tmp_path / "imgs")
    data = (root / "cat" / "2.png").read_bytes()
    (root / "cat" / "2.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="2.png: cannot read this image"):
        load_dataset(data_spec(name="images", path=str(root)))


def test_text_file_as_next_character_windows(tmp_path: Path):
    p = tmp_path / "t.txt"
    p.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    ds = load_dataset(data_spec(name="text", path=str(p), seq_len=8, stride=3))
    assert ds.info.modality == "tokens" and ds.info.input_shape == (8,)
    assert ds.train.x.dtype == torch.int64 and ds.info.num_classes == len(ds.info.vocab)


def test_a_marker_in_a_number_column_gets_the_fix_that_fits_and_the_fix_works(tmp_path):
    """A money column with '?' for unknown amounts: the error offers data.na_values with the
    marker itself, and the spec with that key loads, the marked cells read as missing."""
    path = tmp_path / "t.csv"
    path.write_text("spend,y\n" + "".join(f"{'?' if i % 17 == 0 else i * 1.5},{i % 2}\n" for i in range(60)))
    spec = {"data": {"name": "csv", "path": str(path), "target": "y"}, "model": {"name": "mlp"}}
    with pytest.raises(DataError) as e:
        load_dataset(load_spec(spec).data)
    assert "row 1 holds text '?'" in str(e.value) and "na_values: ['?']" in str(e.value)
    data = load_dataset(load_spec({**spec, "data": {**spec["data"], "na_values": ["?"]}}).data)
    assert sum(data.info.splits.values()) == 60  # every row kept, the four '?' cells filled


def test_a_few_markers_in_a_number_column_read_as_missing_with_a_note(tmp_path, capsys):
    """'?' and 'unknown' in 3 of 400 cells of a number column: those cells are missing (filled,
    flagged), the load says which markers and how many, and a file to predict may hold them too."""
    import netwright

    path = tmp_path / "t.csv"
    marks = {10: "?", 200: "unknown", 300: "?"}
    path.write_text("spend,y\n" + "".join(f"{marks.get(i, i * 1.5)},{i % 2}\n" for i in range(400)))
    spec = {"data": {"name": "csv", "path": str(path), "target": "y"}, "model": {"name": "mlp"},
            "train": {"epochs": 1}}
    data = load_dataset(load_spec(spec).data)
    assert sum(data.info.splits.values()) == 400
    assert data.info.preprocess["missing"]["cells"] == 3
    col = data.info.preprocess["columns"][0]
    assert col["na_values"] == ["?", "unknown"] and col["indicator"]
    assert "spend: 3 cells without a number read as missing ('?' 2, 'unknown' 1)" in data.info.preprocess["notes"][0]
    run = netwright.train(spec, runs_dir=tmp_path, name="m", progress="quiet")
    rows = netwright.predict(run, [{"spend": "?"}, {"spend": "12.5"}])
    assert len(rows) == 2


@pytest.mark.parametrize("cells, why", [
    (["?"] * 5, "5 of 400 is over 1% of the cells"),
    (["12 kg"], "a cell with a digit is a value written wrongly, not a marker"),
])
def test_more_markers_or_a_mistyped_number_are_still_refused(tmp_path, cells, why):
    path = tmp_path / "t.csv"
    body = [str(i * 1.5) for i in range(400)]
    body[:len(cells)] = cells
    path.write_text("spend,y\n" + "".join(f"{v},{i % 2}\n" for i, v in enumerate(body)))
    with pytest.raises(DataError, match="row 1 holds text") as e:
        load_dataset(load_spec({"data": {"name": "csv", "path": str(path), "target": "y"},
                                "model": {"name": "mlp"}}).data)
    assert "na_values" in str(e.value), why
