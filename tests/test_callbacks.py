"""Callbacks: every hook runs in order, a callback stops training, spec-declared ones are
validated against their registry before anything is written, and a resumed run rebuilds them."""

from __future__ import annotations

import pytest

import netwright
from netwright.errors import SpecError
from netwright.training.callbacks import CALLBACKS, Callback

from conftest import tiny_spec


class Recorder(Callback):
    name = "recorder"

    def __init__(self):
        self.events: list = []

    def on_train_start(self, run, state):
        self.events.append(("start", state["epoch"]))

    def on_epoch_end(self, run, record):
        self.events.append(("epoch", record["epoch"], run.path.exists()))

    def on_checkpoint(self, run, path):
        self.events.append(("checkpoint", path.is_file()))

    def on_train_end(self, run, summary):
        self.events.append(("end", summary["epochs"], run.has("model.safetensors")))


def test_every_hook_runs_in_order_and_a_callback_stops_training(_runs_dir):
    recorder = Recorder()
    spec = tiny_spec(epochs=60, checkpoint_interval=0,
                     callbacks=[{"name": "stop_at", "metric": "val_accuracy", "value": 0.85}])
    run = netwright.train(spec, name="cb", progress="quiet", callbacks=[recorder])
    summary = run.read_json("train.json")
    history = run.metrics()
    assert summary["stopped_by"] == "stop_at" and summary["callbacks"] == ["stop_at", "recorder"]
    stopped = summary["epochs"]
    assert stopped < 60 and history[-1]["val_accuracy"] >= 0.85
    assert all(r["val_accuracy"] < 0.85 for r in history[:-1])  # not one epoch late
    assert recorder.events[0] == ("start", 0)
    assert [e[1] for e in recorder.events if e[0] == "epoch"] == list(range(1, stopped + 1))
    assert recorder.events[-1] == ("end", stopped, True)
    assert ("checkpoint", True) in recorder.events


def test_unknown_and_malformed_callbacks_are_refused_before_a_run_is_written(_runs_dir):
    bad = tiny_spec(callbacks=[{"name": "stop_att"}, {"name": "stop_at", "metric": "val_loss"}, {"metric": "x"}])
    with pytest.raises(SpecError) as e:
        netwright.train(bad, name="bad", progress="quiet")
    text = str(e.value)
    assert "did you mean 'stop_at'" in text and "train.callbacks[1].value: required" in text
    assert "train.callbacks[2]: give a mapping with a name" in text
    with pytest.raises(SpecError, match="train.callbacks.0: Input should be a valid dictionary"):
        netwright.train(tiny_spec(callbacks=["stop_at"]), name="bad", progress="quiet")
    assert not (_runs_dir / "bad").exists()


def test_registered_callbacks_are_documented():
    for entry in CALLBACKS.entries():
        assert entry.summary and set(entry.help()) == set(entry.params.model_fields), entry.name


class Explodes(Callback):
    name = "explodes"

    def __init__(self, at: int):
        self.at = at

    def on_epoch_end(self, run, record):
        if record["epoch"] == self.at:
            raise ValueError("the log server is down")


def test_a_callback_that_raises_stops_with_a_resumable_checkpoint(_runs_dir):
    from netwright.errors import CallbackFailed

    spec = tiny_spec(epochs=5, checkpoint_interval=1000)  # no periodic checkpoint before the failure
    with pytest.raises(CallbackFailed) as e:
        netwright.train(spec, name="boom", progress="quiet", callbacks=[Explodes(3)])
    line = str(e.value)
    assert "callback explodes failed in on_epoch_end: ValueError: the log server is down" in line
    assert "end of epoch 3" in line and "--resume" in line and "\n" not in line
    run = netwright.Run.open(_runs_dir / "boom")  # the new run was committed with its checkpoint
    assert not run.has("model.safetensors") and [r["epoch"] for r in run.metrics()] == [1, 2, 3]
    resumed = netwright.train(run.path, resume=True, progress="quiet")
    reference = netwright.train(spec, name="straight", progress="quiet")
    assert resumed.metrics() == reference.metrics()  # the same as a run no callback interrupted
    assert (resumed.path / "model.safetensors").read_bytes() == (reference.path / "model.safetensors").read_bytes()


class ExplodesOnCheckpoint(Callback):
    name = "explodes"

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def on_checkpoint(self, run, path):
        self.calls += 1
        if self.calls == self.at:
            raise ValueError("the upload failed")


def test_a_callback_that_raises_on_a_checkpoint_inside_an_epoch_keeps_that_checkpoint(_runs_dir):
    from netwright.errors import CallbackFailed

    spec = tiny_spec(epochs=3, checkpoint_interval=1e-9)  # a checkpoint after every step
    with pytest.raises(CallbackFailed) as e:
        netwright.train(spec, name="boom", progress="quiet", callbacks=[ExplodesOnCheckpoint(3)])
    assert "failed in on_checkpoint: ValueError: the upload failed" in str(e.value)
    assert "a checkpoint is written at epoch 1, step 3 of" in str(e.value)
    run = netwright.Run.open(_runs_dir / "boom")
    assert run.read_json("checkpoints/last.json")["batch"] == 3  # not overwritten by an epoch-end one
    resumed = netwright.train(run.path, resume=True, progress="quiet")
    reference = netwright.train(spec, name="straight", progress="quiet")
    assert resumed.metrics() == reference.metrics()
    assert (resumed.path / "model.safetensors").read_bytes() == (reference.path / "model.safetensors").read_bytes()
