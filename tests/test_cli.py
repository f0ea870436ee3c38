"""The command line: every verb, and every kind of bad input as one clear line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, assert_one_line_error, run_subprocess, tiny_spec


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def trained(cli, tmp_path: Path) -> Path:
    spec = write_spec(tmp_path / "iris.yaml", tiny_spec())
    r = cli("train", spec, "--name", "my-run", "--quiet")
    assert r.code == 0, r.err
    return Path("runs/my-run")


def test_train_evaluate_predict_round_trip(cli, trained: Path, tmp_path: Path):
    assert "my-run" in cli("runs").out
    r = cli("evaluate", trained)
    assert r.code == 0 and "accuracy" in r.out
    np.save(tmp_path / "x.npy", np.array([[5.1, 3.5, 1.4, 0.2]]))
    r = cli("predict", trained, tmp_path / "x.npy")
    assert r.code == 0
    assert json.loads(r.out)[0]["label"] in ("setosa", "versicolor", "virginica")
    r = cli("predict", trained, tmp_path / "x.npy", "--out", tmp_path / "p.csv")
    assert r.code == 0 and (tmp_path / "p.csv").read_text().startswith("label,class,p_setosa")


def test_set_override_and_listing_commands(cli, tmp_path: Path):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec())
    r = cli("validate", spec, "--set", "train.optimizer.lr=0.05", "--set", "model.hidden=[8,8]")
    assert r.code == 0
    resolved = yaml.safe_load(r.out)
    assert resolved["train"]["optimizer"]["lr"] == 0.05 and resolved["model"]["hidden"] == [8, 8]
    out = cli("datasets").out
    assert all(n in out for n in ("digits", "iris", "wine", "breast_cancer", "diabetes", "mnist1d", "csv"))
    out = cli("models").out
    assert all(n in out for n in ("mlp", "cnn", "rnn", "transformer"))
    assert "bidirectional" in cli("models", "rnn").out


def test_resume_continues_a_run(cli, tmp_path: Path):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec(epochs=2))
    assert cli("train", spec, "--name", "r", "--quiet").code == 0
    r = cli("train", "runs/r", "--resume")
    assert r.code == 0 and "finished already" in r.err


def test_readme_demo_example_trains(cli):
    r = cli("train", ROOT / "examples/digits_cnn.yaml", "--set", "train.epochs=1", "--name", "one", "--quiet")
    assert r.code == 0, r.err


# ---------------------------------------------------------------------- bad input


BAD_SPECS = [
    ({"data": {"name": "digitz"}, "model": {"name": "mlp"}}, ["data.name", "unknown dataset 'digitz'", "digits"]),
    ({"data": {"name": "iris"}, "model": {"name": "resnet"}}, ["model.name", "unknown model 'resnet'"]),
    (tiny_spec(optimizer={"name": "adagrad"}), ["train.optimizer.name", "'sgd', 'adam', 'adamw' or 'rmsprop'"]),
    (tiny_spec(epochs="ten"), ["train.epochs", "valid integer"]),
    ({"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": "wide"}}, ["model.hidden"]),
]


@pytest.mark.parametrize("spec,fragments", BAD_SPECS, ids=["dataset", "model", "optimizer", "type", "param-type"])
def test_bad_specs(cli, tmp_path: Path, spec, fragments):
    r = cli("train", write_spec(tmp_path / "bad.yaml", spec))
    assert_one_line_error(r, *fragments)
    assert not Path("runs").exists()  # validation happens before any work


def test_malformed_yaml(cli, tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("data: {name: iris\nmodel: mlp\n")
    assert_one_line_error(cli("train", tmp_path / "bad.yaml"), "malformed YAML at line")


def test_missing_spec_and_run(cli):
    assert_one_line_error(cli("train", "nope.yaml"), "nope.yaml: no such spec file")
    assert_one_line_error(cli("evaluate", "runs/nope"), "no such run directory")


def csv_spec(tmp_path: Path, text: str, **data) -> Path:
    (tmp_path / "d.csv").write_text(text)
    return write_spec(tmp_path / "s.yaml", {"data": {"name": "csv", "path": str(tmp_path / "d.csv"), "target": "y",
                                                     **data}, "model": {"name": "mlp"}})


@pytest.mark.parametrize("text,fragments", [
    ("a,b\n1,2\n3,4\n", ["no column 'y'", "columns are a, b"]),
    # a number written wrongly (a lone 'x' would be a missing-value marker, read as missing)
    ("a,y\n" + "1,0\n2,1\n" * 5 + "1x,0\n", ["numeric column 'a' row 11 holds text '1x'"]),
    ("a,y\n" + "1,0\n2,1\n" * 5 + "inf,0\n", ["column 'a' row 11 is inf"]),  # nan is a missing cell: filled
    ("a,y\n", ["no data rows"]),
], ids=["no-target", "text-in-numeric", "inf", "empty"])
def test_bad_csv(cli, tmp_path: Path, text, fragments):
    assert_one_line_error(cli("train", csv_spec(tmp_path, text)), *fragments)


def test_labels_out_of_range(cli, tmp_path: Path):
    np.savez(tmp_path / "d.npz", x=np.zeros((30, 2)), y=np.array([0, 1, 5] * 10))
    spec = write_spec(tmp_path / "s.yaml", {"data": {"name": "npz", "path": str(tmp_path / "d.npz"),
                                                     "class_names": ["a", "b"]}, "model": {"name": "mlp"}})
    assert_one_line_error(cli("train", spec), "label 5 is out of range", "0..1")


def test_image_of_the_wrong_size(cli, tmp_path: Path):
    from PIL import Image

    spec = write_spec(tmp_path / "s.yaml", {"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [8]},
                                            "train": {"epochs": 1, "threads": 1}})
    assert cli("train", spec, "--name", "d", "--quiet").code == 0
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
    assert_one_line_error(cli("predict", "runs/d", tmp_path / "x.png"), "28x28", "8x8")


def test_existing_run_is_not_overwritten(cli, trained: Path, tmp_path: Path):
    before = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    spec = write_spec(tmp_path / "other.yaml", tiny_spec(epochs=1))
    assert_one_line_error(cli("train", spec, "--name", "my-run"), "already exists", "--overwrite")
    assert {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()} == before


def test_corrupt_and_truncated_weights(cli, trained: Path):
    weights = trained / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert_one_line_error(cli("evaluate", trained), "model.safetensors", "damaged")
    np.save("x.npy", np.zeros((2, 4), np.float32))  # a valid input: the weights are what is damaged
    assert_one_line_error(cli("predict", trained, "x.npy"), "model.safetensors", "damaged")
    ckpt = trained / "checkpoints" / "last.safetensors"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    before = ckpt.read_bytes()
    assert_one_line_error(cli("train", trained, "--resume"), "last.safetensors", "damaged")
    assert ckpt.read_bytes() == before


def test_non_finite_loss(cli, tmp_path: Path):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec(epochs=6, checkpoint_interval=0,
                                                     optimizer={"name": "sgd", "lr": 30}))
    r = cli("train", spec, "--name", "nan", "--quiet")
    assert_one_line_error(r, "loss became nan at epoch 3, step 4", "last good checkpoint (epoch 2)")
    assert Path("runs/nan/checkpoints/last.safetensors").is_file()


def test_debug_shows_the_traceback(cli):
    r = run_subprocess("--debug", "train", "nope.yaml")
    assert r.returncode != 0 and "Traceback" in r.stderr
    r = run_subprocess("train", "nope.yaml")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error: nope.yaml")


def test_usage_errors_exit_2(cli):
    assert cli("train").code == 2
    assert cli("frobnicate").code == 2


def test_the_demo_prints_commands_that_work_as_printed(monkeypatch, tmp_path):
    """``make demo`` ends with a command to try; without ``.venv/bin`` on PATH the bare
    ``netwright`` would not be found, so the demo prints the launcher's path, which runs."""
    import subprocess
    import sys

    from netwright.demo import command

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.chdir(tmp_path)
    printed = command()
    assert printed != "netwright" and printed.endswith("netwright")
    assert subprocess.run([printed, "--help"], capture_output=True).returncode == 0
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")
    assert command() == "netwright"


def test_validate_refuses_a_spec_whose_data_file_is_missing(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "s.yaml", {"data": {"name": "csv", "path": "nope.csv", "target": "y"},
                                            "model": {"name": "mlp"}})
    assert_one_line_error(cli("validate", spec), "data.path: no such file or folder 'nope.csv'",
                          str(tmp_path / "nope.csv"), "read from its folder")
    (tmp_path / "nope.csv").write_text("a,y\n1,0\n2,1\n")
    assert cli("validate", spec).code == 0
