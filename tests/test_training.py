from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import netwright
from netwright import TrainingError, build_model, load_dataset, load_spec
from netwright.data.augment import Augmenter
from netwright.data.roles import role_rows
from netwright.spec import AugmentSpec
from netwright.tasks import ClassificationTask
from netwright.training.callbacks import Callback
from netwright.training.checkpoint import read_weights
from netwright.training.optim import build_optimizer, build_scheduler
from conftest import killed_and_resumed, tiny_spec


def test_golden_losses():
    """Tiny model, fixed seed, a few steps: the exact losses (torch 2.13 CPU)."""
    run = netwright.train(tiny_spec(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9}), name="g",
                          progress="quiet")
    history = run.metrics()
    assert [h["train_loss"] for h in history] == pytest.approx(
        [0.9676437832060314, 0.4257480848403204, 0.2960724472999573], rel=1e-6)
    assert [h["val_loss"] for h in history] == pytest.approx(
        [0.49265122413635254, 0.28514817357063293, 0.1691155582666397], rel=1e-6)
    assert [h["val_accuracy"] for h in history] == pytest.approx([6 / 8, 6 / 8, 1.0])  # the 8 select rows of 23


def test_the_trainer_takes_the_steps_of_a_hand_written_loop():
    """The golden losses above, reproduced by a plain PyTorch loop written from the trainer's
    documented contract: the model built after torch.manual_seed(seed); each epoch the global RNG
    seeded with derive_seed(seed, epoch, 0) and the example order a randperm seeded with
    derive_seed(seed, epoch, 1); a trailing batch of one example dropped; SGD steps; train_loss
    the example-weighted mean of the batch losses; val_loss one cross-entropy over the split's
    ``select`` rows (``netwright.data.roles``)."""
    import torch.nn.functional as F

    from netwright.training.trainer import derive_seed

    raw = tiny_spec(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9})
    history = netwright.train(raw, name="g", progress="quiet").metrics()
    spec = load_spec(raw)
    data = load_dataset(spec.data)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model.name, data.info, **spec.model.params)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y, bs = data.train.x, data.train.y, spec.train.batch_size
    n = len(y) - (1 if len(y) % bs == 1 else 0)
    select = role_rows(len(data.val), {"select": 1 / 3, "temperature": 1 / 3, "conformal": 1 / 3},
                       spec.data.split_seed)["select"]
    for epoch, logged in enumerate(history, start=1):
        torch.manual_seed(derive_seed(spec.seed, epoch, 0))
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(derive_seed(spec.seed, epoch, 1)))[:n]
        model.train()
        total = 0.0
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():  # on the rows that choose the kept epoch: the first of three parts
            val_loss = F.cross_entropy(model(data.val.x[select]), data.val.y[select]).item()
        assert logged["train_loss"] == pytest.approx(total / n, rel=1e-6)
        assert logged["val_loss"] == pytest.approx(val_loss, rel=1e-6)


def test_same_seed_same_data_gives_identical_metrics(_runs_dir: Path):
    spec = tiny_spec(epochs=4, augment={"noise": 0.1, "mixup": 0.2})
    spec["model"]["dropout"] = 0.2
    a = netwright.train(spec, name="a", progress="quiet")
    b = netwright.train(spec, name="b", progress="quiet")
    assert (a.path / "metrics.jsonl").read_bytes() == (b.path / "metrics.jsonl").read_bytes()
    c = netwright.train({**spec, "seed": 1}, name="c", progress="quiet")
    assert (a.path / "metrics.jsonl").read_bytes() != (c.path / "metrics.jsonl").read_bytes()


def test_run_directory_contract():
    run = netwright.train(tiny_spec(), name="contract", progress="quiet")
    for rel in ("spec.yaml", "data.json", "metrics.jsonl", "timing.jsonl", "train.json", "model.safetensors",
                "checkpoints/last.safetensors", "checkpoints/last.json"):
        assert run.has(rel), rel
    resolved = yaml.safe_load((run.path / "spec.yaml").read_text())
    assert resolved["name"] == "contract" and resolved["train"]["optimizer"]["lr"] == 0.001
    assert run.read_json("checkpoints/last.json")["finished"] is True
    assert not list(run.path.rglob("*.tmp")), "temporary files left behind"
    from netwright.atomic import FILE_MODE

    assert all(p.stat().st_mode & 0o777 == FILE_MODE for p in run.path.rglob("*") if p.is_file())


def test_early_stopping_restores_the_best_weights():
    spec = tiny_spec(epochs=60, early_stopping={"patience": 3}, monitor="val_loss",
                     optimizer={"name": "adam", "lr": 0.05})
    run = netwright.train(spec, name="es", progress="quiet")
    summary = run.read_json("train.json")
    history = run.metrics()
    assert summary["stopped_early"] and summary["epochs"] < 60
    assert summary["epochs"] - summary["best_epoch"] == 3
    best = min(history, key=lambda h: h["val_loss"])
    assert summary["best_epoch"] == best["epoch"]
    # the saved model is the best epoch's: re-scoring the validation split's select rows reproduces its loss
    data = run.load_data()
    select = role_rows(len(data.val), {"select": 1 / 3, "temperature": 1 / 3, "conformal": 1 / 3}, 0)["select"]
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(run.load_model()(data.val.x[select]), data.val.y[select])
    assert float(loss) == pytest.approx(best["val_loss"], rel=1e-5)


@pytest.mark.parametrize("name,extra", [
    ("sgd", {"momentum": 0.9, "nesterov": True}), ("adam", {}), ("adamw", {"weight_decay": 0.01}),
    ("rmsprop", {"momentum": 0.5}), ("sgd", {"fused": False}),
])
def test_every_optimizer_trains(name, extra):
    lr = 0.05 if name in ("sgd",) else 0.01
    run = netwright.train(tiny_spec(epochs=8, optimizer={"name": name, "lr": lr, **extra}), name=f"o-{name}",
                          progress="quiet")
    h = run.metrics()
    assert h[-1]["train_loss"] < h[0]["train_loss"]


def test_schedules_follow_their_formulas():
    p = [torch.nn.Parameter(torch.zeros(2))]
    opt_spec = load_spec(tiny_spec(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9})).train.optimizer

    def lrs(schedule: dict, steps_per_epoch: int = 10, epochs: int = 10) -> list[float]:
        spec = load_spec(tiny_spec(schedule=schedule)).train.schedule
        opt = build_optimizer(p, opt_spec)
        sched = build_scheduler(opt, spec, opt_spec, steps_per_epoch, epochs)
        out = []
        for _ in range(steps_per_epoch * epochs):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    step = lrs({"name": "step", "step_size": 3, "gamma": 0.5})
    assert step[0] == pytest.approx(0.1) and step[30] == pytest.approx(0.05) and step[60] == pytest.approx(0.025)
    cos = lrs({"name": "cosine", "min_lr": 0.01})
    assert cos[0] == pytest.approx(0.1) and cos[50] == pytest.approx(0.055) and cos[-1] == pytest.approx(0.01, abs=1e-4)
    warm = lrs({"name": "constant", "warmup_epochs": 2})
    assert warm[0] == pytest.approx(0.1 / 20) and warm[9] == pytest.approx(0.05) and warm[25] == pytest.approx(0.1)
    one = lrs({"name": "onecycle", "pct_start": 0.3})
    peak = max(range(len(one)), key=one.__getitem__)
    assert one[peak] == pytest.approx(0.1) and abs(peak - 30) <= 1 and one[-1] < 1e-4


def test_l1_penalty_shrinks_weights():
    def weight_norm(l1: float) -> float:
        run = netwright.train(tiny_spec(epochs=10, l1=l1, optimizer={"name": "adam", "lr": 0.01}), name=f"l1-{l1}",
                              progress="quiet")
        tensors, _ = read_weights(run.file("model.safetensors"))
        return float(sum(v.abs().sum() for k, v in tensors.items() if k.endswith("weight")))

    assert weight_norm(0.05) < 0.5 * weight_norm(0.0)


def test_label_smoothing_and_grad_clip_are_applied():
    info = load_dataset(load_spec(tiny_spec()).data).info
    spec = load_spec(tiny_spec(label_smoothing=0.2, grad_clip=0.01)).train
    task = ClassificationTask(info, spec)
    logits, y = torch.randn(8, 3), torch.randint(0, 3, (8,))
    soft = torch.full((8, 3), 0.2 / 3).scatter_(1, y[:, None], 1 - 0.2 + 0.2 / 3)
    manual = -(soft * torch.log_softmax(logits, 1)).sum(1).mean()
    assert float(task.loss(logits, y)) == pytest.approx(float(manual), rel=1e-6)

    torch.manual_seed(0)
    model = netwright.build_model("mlp", info, hidden=[16])
    opts = task.optimizers(model)
    before = [p.detach().clone() for p in model.parameters()]
    task.train_step(model, (torch.randn(8, 4), y), opts)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()]))
    assert float(norm) == pytest.approx(0.01, rel=1e-4)  # clipped to grad_clip
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_augmentation_by_modality():
    digits = load_dataset(load_spec({"data": {"name": "digits"}, "model": {"name": "cnn"}}).data)
    x, y = digits.train.x[:32], digits.train.y[:32]
    aug = Augmenter(AugmentSpec(shift=1, rotate=10, flip=True, noise=0.1), "image", 10)
    aug.reseed(0)
    xa, ya = aug(x, y)
    assert xa.shape == x.shape and torch.equal(ya, y) and not torch.allclose(xa, x)
    aug.reseed(0)
    assert torch.equal(aug(x, y)[0], xa)  # a function of the seed
    # a whole-pixel shift moves the image content exactly (checked away from the border)
    shift = Augmenter(AugmentSpec(shift=1), "image", 10)
    shift.reseed(3)
    moved = shift(x, y)[0]
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    for a, b in zip(moved, x):
        assert any(torch.allclose(a[:, 2:-2, 2:-2], torch.roll(b, (dy, dx), (1, 2))[:, 2:-2, 2:-2], atol=1e-5)
                   for dy, dx in offsets)

    seq = torch.randn(8, 1, 40)
    s = Augmenter(AugmentSpec(shift=3, mask=0.2), "sequence", 10)
    s.reseed(0)
    out = s(seq, torch.zeros(8, dtype=torch.long))[0]
    assert out.shape == seq.shape and (out == 0).float().mean() > 0.1

    tab = Augmenter(AugmentSpec(mixup=0.4), "tabular", 3)
    tab.reseed(0)
    xt, yt = tab(torch.randn(16, 4), torch.randint(0, 3, (16,)))
    assert yt.shape == (16, 3) and torch.allclose(yt.sum(1), torch.ones(16))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint():
    spec = tiny_spec(epochs=6, checkpoint_interval=0, optimizer={"name": "sgd", "lr": 30})
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 3, step 4 .*last good checkpoint \(epoch 2\)"):
        netwright.train(spec, name="nan", progress="quiet")
    run = netwright.Run.open("nan")
    _, state = read_weights(run.file("checkpoints/last.safetensors"))
    assert state["epoch"] == 2
    tensors, _ = read_weights(run.file("checkpoints/last.safetensors"))
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())
    assert len(run.metrics()) == 2 and not run.has("model.safetensors")


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path: Path):
    """Kill a real training process mid-run; --resume ends exactly where an uninterrupted run ends."""
    spec = {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [16, 32], "dropout": 0.2},
            "train": {"epochs": 14, "threads": 1, "checkpoint_interval": 0, "augment": {"shift": 1},
                      "schedule": {"name": "onecycle"}, "optimizer": {"name": "adamw", "lr": 0.003}}}
    full, killed = killed_and_resumed(spec, tmp_path, kill_at_epoch=3)
    assert (killed / "metrics.jsonl").read_text() == (full / "metrics.jsonl").read_text()
    a, _ = read_weights(full / "model.safetensors")
    b, _ = read_weights(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_kill_inside_an_epoch_continues_at_that_batch(tmp_path: Path):
    """kill -9 after a periodic checkpoint taken inside an epoch: --resume starts at that batch
    (partial loss sums, dropout and augmentation generators restored) and ends with the metrics
    and weights of an uninterrupted run."""
    spec = {"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [32], "dropout": 0.3},
            "train": {"epochs": 3, "batch_size": 64, "threads": 1, "checkpoint_interval": 1e-9,
                      "augment": {"shift": 1, "noise": 0.05}, "schedule": {"name": "onecycle"},
                      "optimizer": {"name": "adamw", "lr": 0.01}}}
    full, killed = killed_and_resumed(spec, tmp_path, kill_at_epoch=1, kill_inside_epoch=True)
    cut = json.loads((tmp_path / "killed.json").read_text())  # the checkpoint the resume started from
    assert cut["epoch"] >= 1 and cut["batch"] > 0 and cut["partial"]["total"] > 0 and "augment_np" in cut
    assert (killed / "metrics.jsonl").read_text() == (full / "metrics.jsonl").read_text()
    a, _ = read_weights(full / "model.safetensors")
    b, _ = read_weights(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    end = json.loads((killed / "checkpoints" / "last.json").read_text())
    assert end["batch"] == 0 and end["partial"] is None and "augment_np" not in end


class LastJson(Callback):
    """Keeps checkpoints/last.json each time a checkpoint is written."""

    def __init__(self):
        self.seen: list[dict] = []

    def on_checkpoint(self, run, path):
        self.seen.append(json.loads((path.parent / "last.json").read_text()))


def test_checkpoints_inside_epochs_change_neither_training_nor_the_epoch_end_ones():
    spec = tiny_spec(epochs=3, checkpoint_interval=1e-9, augment={"noise": 0.1})  # after every step
    spec["model"]["dropout"] = 0.2
    rare = netwright.train({**spec, "train": {**spec["train"], "checkpoint_interval": 1e9}}, name="rare",
                           progress="quiet")
    seen = LastJson()
    run = netwright.train(spec, name="often", progress="quiet", callbacks=[seen])
    assert run.metrics() == rare.metrics()
    assert (run.path / "model.safetensors").read_bytes() == (rare.path / "model.safetensors").read_bytes()
    steps = run.read_json("train.json")["steps"] // 3
    # after every step of epoch e + 1 but its last (the state's epoch is the last whole one), then
    # at its end (after the last epoch: the final checkpoint)
    assert [(c["epoch"], c["batch"]) for c in seen.seen] == [
        (e + (b == steps), b % steps) for e in range(3) for b in range(1, steps + 1)]
    for c in seen.seen:
        assert (c["partial"] is None) == (c["batch"] == 0) and ("augment_np" in c) == (c["batch"] > 0)
        assert c["step"] == c["epoch"] * steps + c["batch"]


def test_resume_of_a_finished_run_changes_nothing():
    run = netwright.train(tiny_spec(), name="done", progress="quiet")
    before = (run.path / "model.safetensors").read_bytes()
    netwright.train(run.path, resume=True, progress="quiet")
    assert (run.path / "model.safetensors").read_bytes() == before


def test_train_regression_reports_original_units():
    run = netwright.train({"data": {"name": "diabetes"}, "model": {"name": "mlp", "hidden": [32]},
                           "train": {"epochs": 30, "threads": 1, "optimizer": {"name": "adam", "lr": 0.01}}},
                          name="reg", progress="quiet")
    last = run.metrics()[-1]
    assert 20 < last["val_mae"] < 80 and math.isfinite(last["val_r2"])  # progression is in 25..346


def test_speed_options_train_to_the_same_place():
    """channels-last and bf16 autocast change kernels, not the model: losses stay close."""
    spec = {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [8, 16]},
            "train": {"epochs": 2, "threads": 1, "precision": "fp32", "channels_last": False}}
    base = netwright.train(spec, name="base", progress="quiet")
    cl = netwright.train(spec, name="cl", progress="quiet", overrides=["train.channels_last=true"])
    bf = netwright.train(spec, name="bf", progress="quiet", overrides=["train.precision=bf16"])
    b, c, f = (r.metrics()[-1]["val_loss"] for r in (base, cl, bf))
    assert c == pytest.approx(b, rel=1e-3)
    assert f == pytest.approx(b, rel=0.1)
    assert bf.read_json("train.json")["precision"] == "bf16" and cl.read_json("train.json")["channels_last"]
    # the run's weights load into a plain (contiguous, fp32) model
    assert netwright.evaluate(cl, plots=False)["metrics"]["accuracy"] > 0.5


def test_compile_option_trains():
    run = netwright.train(tiny_spec(epochs=1, compile=True), name="compiled", progress="quiet")
    assert run.read_json("train.json")["finished"]


@pytest.mark.parametrize("epochs,batch", [(1, 64), (2, 64), (1, 16)])
def test_onecycle_on_very_short_runs(epochs, batch):
    """A handful of steps still trains (one-cycle needs a step per phase)."""
    run = netwright.train(tiny_spec(epochs=epochs, batch_size=batch, schedule={"name": "onecycle"}),
                          name=f"short-{epochs}-{batch}", progress="quiet")
    assert run.read_json("train.json")["finished"]


def test_time_to_levels_of_the_best_on_planted_histories():
    """A rising accuracy reaches 90% of its best (0.9) at epoch 2, 99% at epoch 4; a falling loss
    reaches best / 0.9 and best / 0.99 at the epochs where it first goes below them; the seconds
    are the training time summed through that epoch; a best that is not above 0 gives nothing."""
    from netwright.training.time_to import describe, time_to_levels, to_best

    history = [{"epoch": e, "val_accuracy": a, "val_loss": l}
               for e, a, l in ((1, 0.5, 1.0), (2, 0.82, 0.30), (3, 0.88, 0.22), (4, 0.9, 0.2), (5, 0.89, 0.201))]
    timing = [{"epoch": e, "seconds": s} for e, s in ((1, 2.0), (2, 1.0), (3, 1.5), (4, 1.0), (5, 1.0))]
    acc = time_to_levels(history, timing, "val_accuracy", False, 100)
    assert acc["best"] == 0.9 and acc["seconds"] == 6.5
    assert [(lv["epoch"], lv["seconds"], lv["examples"]) for lv in acc["levels"]] == [(2, 3.0, 200), (3, 4.5, 300),
                                                                                      (4, 5.5, 400)]
    loss = time_to_levels(history, timing, "val_loss", True, 100)
    assert [lv["epoch"] for lv in loss["levels"]] == [3, 4, 4]  # 0.222, 0.2105, 0.2020
    assert to_best(acc) == "5.5 s (epoch 4)" and to_best(None) == "-"
    assert "90% of the best (0.81) at epoch 2" in describe(acc)
    assert time_to_levels([{"epoch": 1, "val_r2": -0.3}], timing, "val_r2", False, 10) is None
    assert time_to_levels([{"epoch": 1, "val_accuracy": None}], timing, "val_accuracy", False, 10) is None


def test_a_run_records_when_it_reached_each_level_of_its_best(tmp_path):
    """train.json's time_to agrees with the run's own metrics.jsonl and timing.jsonl."""
    run = netwright.train({"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [8]},
                           "train": {"epochs": 6, "threads": 1}}, runs_dir=tmp_path, name="t", progress="quiet")
    summary = json.loads((run.path / "train.json").read_text())
    metrics = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    timing = [json.loads(line) for line in (run.path / "timing.jsonl").read_text().splitlines()]
    t = summary["time_to"]
    best = max(r["val_accuracy"] for r in metrics)
    assert t["metric"] == "val_accuracy" and t["best"] == best
    for lv in t["levels"]:
        first = next(r["epoch"] for r in metrics if r["val_accuracy"] >= lv["level"] * best)
        assert lv["epoch"] == first
        assert lv["seconds"] == pytest.approx(sum(x["seconds"] for x in timing if x["epoch"] <= first), abs=1e-3)


def _iris(tmp_path, name, **train):
    return netwright.train({"data": {"name": "iris"}, "model": {"name": "mlp", "hidden": [16]},
                            "train": {"epochs": 6, "threads": 1, "keep": "last", **train}},
                           runs_dir=tmp_path, name=name, progress="quiet")


def test_ema_weights_differ_from_the_raw_ones_are_validated_and_saved(tmp_path):
    """The same seed with and without train.ema trains the same raw weights; with it, the saved
    weights are the average (not the raw ones), the checkpoint carries it, and the last epoch's
    validation loss is the saved model's own; a decay near 0 gives back the raw weights."""
    from netwright.data.roles import take
    from netwright.tasks.supervised import collect_outputs
    from netwright.tasks import run_task
    from netwright.training.checkpoint import read_weights

    raw, avg, near = _iris(tmp_path, "raw"), _iris(tmp_path, "avg", ema=0.8), _iris(tmp_path, "near", ema=1e-6)
    w_raw, w_avg, w_near = (r.load_model().state_dict() for r in (raw, avg, near))
    assert any(not torch.allclose(w_raw[k], w_avg[k]) for k in w_raw)
    assert all(torch.allclose(w_raw[k], w_near[k], atol=1e-5) for k in w_raw)
    tensors, _ = read_weights(avg.path / "checkpoints" / "last.safetensors")
    assert all(torch.equal(tensors[f"ema.{k}"], w_avg[k]) for k in w_avg)
    last = [json.loads(line) for line in (avg.path / "metrics.jsonl").read_text().splitlines()][-1]
    task, data = run_task(avg), avg.load_data()
    out = take(collect_outputs(avg.load_model(), task, data.val, 1024, torch.device("cpu")),
               task.val_rows(len(data.val), "select", avg.spec.data.split_seed))
    assert task.metrics(out)["loss"] == pytest.approx(last["val_loss"], rel=1e-5)
    raw_last = [json.loads(line) for line in (raw.path / "metrics.jsonl").read_text().splitlines()][-1]
    assert raw_last["val_loss"] != pytest.approx(last["val_loss"], rel=1e-4)


def test_stop_at_stops_at_the_first_epoch_that_reaches_the_value(tmp_path):
    """train.stop_at {metric: accuracy, value: v}: v set to what the free run reaches at epoch 3
    stops it there (not before, not after); a loss stops at or below its value; an unknown
    metric is one line before training."""
    free = _iris(tmp_path, "free", epochs=8)
    history = [json.loads(line) for line in (free.path / "metrics.jsonl").read_text().splitlines()]
    value = history[2]["val_accuracy"]
    first = next(r["epoch"] for r in history if r["val_accuracy"] >= value)
    stopped = _iris(tmp_path, "stopped", epochs=8, stop_at={"metric": "accuracy", "value": value})
    summary = json.loads((stopped.path / "train.json").read_text())
    assert summary["epochs"] == first and summary["stopped_by"] == "stop_at"
    loss = history[4]["val_loss"]
    by_loss = _iris(tmp_path, "loss", epochs=8, stop_at={"metric": "val_loss", "value": loss})
    assert json.loads((by_loss.path / "train.json").read_text())["epochs"] == next(
        r["epoch"] for r in history if r["val_loss"] <= loss)
    with pytest.raises(netwright.NetwrightError, match="train.stop_at.metric: unknown metric 'val_acc'"):
        _iris(tmp_path, "bad", stop_at={"metric": "acc", "value": 1})


def test_budget_s_sets_the_schedule_and_ends_within_an_epoch_of_the_budget(tmp_path, monkeypatch):
    """train.budget_s: the measured step time sets how many epochs the schedule spans (at most
    train.epochs), and training ends before the epoch that would pass the budget: planted step
    costs (a sleep in every step) make both predictable."""
    import time as clock

    from netwright.tasks.supervised import SupervisedTask as Supervised

    step = Supervised.train_step

    def slow(self, model, batch, optimizers):
        clock.sleep(0.01)
        return step(self, model, batch, optimizers)

    monkeypatch.setattr(Supervised, "train_step", slow)
    run = _iris(tmp_path, "budget", epochs=200, batch_size=32, budget_s=1.0, schedule={"name": "onecycle"})
    summary = json.loads((run.path / "train.json").read_text())
    timing = [json.loads(line)["seconds"] for line in (run.path / "timing.jsonl").read_text().splitlines()]
    per_epoch = statistics.median(timing)
    assert 1 <= summary["epochs_planned"] < 200
    assert summary["epochs_planned"] == pytest.approx(1.0 / per_epoch, rel=0.5)
    assert summary["seconds"] <= 1.0 + per_epoch and summary["seconds"] >= 1.0 - 2 * per_epoch
    assert summary["epochs"] <= summary["epochs_planned"]
    lr = [json.loads(line)["lr"] for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert lr[-1] < 0.05 * max(lr) or summary.get("stopped_by") == "budget_s"  # the one-cycle schedule spans the budget


def test_tta_averages_the_outputs_of_the_named_views_everywhere_a_run_is_used(tmp_path):
    """train.tta [flip, shift]: the loaded model's output is the mean of the plain model's outputs
    for the input, its mirror and its two shifts (computed here by hand); training is untouched
    (the same weights as without it); predict's probabilities are the softmax of that mean;
    evaluate says so; tabular data and box targets are refused in one line."""
    from netwright.models import build_model
    from netwright.training.checkpoint import load_model_weights

    spec = {"data": {"name": "digits"}, "model": {"name": "cnn", "channels": [4, 8], "hidden": [16]},
            "train": {"epochs": 2, "threads": 1}}
    plain = netwright.train(spec, runs_dir=tmp_path, name="plain", progress="quiet")
    tta = netwright.train({**spec, "train": {**spec["train"], "tta": ["flip", "shift"]}}, runs_dir=tmp_path,
                          name="tta", progress="quiet")
    model = tta.load_model()
    bare = build_model("cnn", tta.info, channels=[4, 8], hidden=[16])
    load_model_weights(bare, tta.path / "model.safetensors")
    bare.eval()
    assert all(torch.equal(a, b) for a, b in zip(bare.state_dict().values(),
                                                 plain.load_model().state_dict().values()))
    x = tta.load_data().split("test").x[:16]
    zero = torch.zeros_like(x[..., :1])
    by_hand = torch.stack([bare(x), bare(x.flip(-1)), bare(torch.cat([zero, x[..., :-1]], -1)),
                           bare(torch.cat([x[..., 1:], zero], -1))]).mean(0)
    with torch.no_grad():
        assert torch.allclose(model(x), by_hand, atol=1e-6)
        assert not torch.allclose(model(x), bare(x), atol=1e-3)
    probs = torch.softmax(by_hand.detach().double(), 1)
    from netwright.stages.predict import Predictor

    got = Predictor(tta).outputs(x)  # the encoded inputs, as predict and serve pass them on
    assert np.allclose([list(r["probabilities"].values()) for r in got], probs.numpy(), atol=1e-5)
    model.train(), bare.train()  # training mode: one pass, as the plain model
    with torch.no_grad():
        torch.manual_seed(0)
        trained = model(x)
        torch.manual_seed(0)
        assert torch.allclose(trained, bare(x), atol=1e-6)
    assert netwright.evaluate(tta)["tta"] == ["flip", "shift"]
    with pytest.raises(netwright.SpecError, match="train.tta: flip applies to image data"):
        netwright.train({"data": {"name": "iris"}, "model": {"name": "mlp"}, "train": {"epochs": 1, "tta": ["flip"]}},
                        runs_dir=tmp_path, name="t", progress="quiet")


def test_a_tie_on_the_monitored_score_goes_to_the_epoch_with_the_lower_validation_loss(tmp_path):
    """Monitoring val_accuracy on iris (its few select rows tie for many epochs while the loss
    falls): the kept epoch is the last that raised the accuracy or tied it with a lower loss,
    recomputed here from metrics.jsonl, and not the first epoch of the plateau."""
    run = _iris(tmp_path, "ties", epochs=30, keep="best", monitor="val_accuracy")
    history = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    best = None
    for r in history:
        if best is None or r["val_accuracy"] > best["val_accuracy"] or (
                r["val_accuracy"] == best["val_accuracy"] and r["val_loss"] < best["val_loss"]):
            best = r
    first = next(r["epoch"] for r in history if r["val_accuracy"] == max(h["val_accuracy"] for h in history))
    summary = json.loads((run.path / "train.json").read_text())
    assert summary["best_epoch"] == best["epoch"] != first
    assert summary["best_value"] == best["val_accuracy"]
