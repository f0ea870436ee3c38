"""GANs: the model pair, the adversarial step, the Frechet distance, determinism and resume,
sampling, export, bad input; the digits GAN's quality end to end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import netwright
from netwright import build_model, load_spec
from netwright.metrics import frechet_distance
from netwright.tasks import AdversarialTask
from conftest import assert_one_line_error
from test_models import INFOS

TABULAR = netwright.DataInfo(name="t", task="classification", modality="tabular", input_shape=(5,), num_classes=3,
                             class_names=["a", "b", "c"])


def gan_spec(epochs: int = 2, **model) -> dict:
    return {"data": {"name": "digits"}, "model": {"name": "gan", "g_channels": 8, "d_channels": 8, **model},
            "train": {"epochs": epochs, "threads": 1, "adversarial": {"judge_epochs": 2, "quality_samples": 100}}}


@pytest.mark.parametrize("info", [INFOS["image"], INFOS["rgb"], TABULAR], ids=["digits", "rgb", "tabular"])
@pytest.mark.parametrize("conditional", [False, True])
def test_generator_and_discriminator_contract(info, conditional):
    torch.manual_seed(0)
    gan = build_model("gan", info, conditional=conditional).train()
    labels = torch.tensor([0, 1, 2, 0])
    fake = gan(torch.randn(4, gan.latent_dim), labels if conditional else None)
    assert fake.shape == (4, *info.input_shape) and torch.isfinite(fake).all()
    logit = gan.discriminator(fake, labels if conditional else None)
    assert logit.shape == (4,)
    (logit.sum() + fake.sum()).backward()
    for name, p in gan.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if info.modality == "image":  # samples stay in the data's normalised pixel range
        assert (fake >= gan.generator.lo - 1e-5).all() and (fake <= gan.generator.hi + 1e-5).all()


def test_each_adversarial_step_updates_only_its_network():
    info = INFOS["image"]
    torch.manual_seed(0)
    gan = build_model("gan", info, conditional=True)
    spec = load_spec(gan_spec())
    task = AdversarialTask(info, spec.train, judge=None)
    opt_d, opt_g = task.optimizers(gan)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))

    def snapshot(module):
        return [p.detach().clone() for p in module.parameters()]

    g0, d0 = snapshot(gan.generator), snapshot(gan.discriminator)
    task.d_step(gan, x, y, opt_d)
    assert all(torch.equal(a, b) for a, b in zip(g0, gan.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, gan.discriminator.parameters()))
    g1, d1 = snapshot(gan.generator), snapshot(gan.discriminator)
    task.g_step(gan, 8, y, opt_g)
    assert all(torch.equal(a, b) for a, b in zip(d1, gan.discriminator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(g1, gan.generator.parameters()))
    assert all(p.requires_grad for p in gan.discriminator.parameters())


def test_frechet_distance_on_known_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    a = rng.normal(mu1, s1, (200_000, 3))
    b = rng.normal(mu2, s2, (200_000, 3))
    closed_form = ((mu1 - mu2) ** 2).sum() + (s1**2 + s2**2 - 2 * s1 * s2).sum()
    assert frechet_distance(a, b) == pytest.approx(closed_form, rel=0.02)
    # against a computation written differently: Tr((C_a C_b)^(1/2)) as the sum of the square roots
    # of the eigenvalues of the symmetric C_a^(1/2) C_b C_a^(1/2) (no matrix square root of a product)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root_a = v @ np.diag(np.sqrt(w)) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cb @ root_a), 0, None)).sum()
    direct = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross
    assert frechet_distance(a, b) == pytest.approx(direct, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_gan_runs_are_deterministic_and_report_quality():
    a = netwright.train(gan_spec(), name="a", progress="quiet")
    b = netwright.train(gan_spec(), name="b", progress="quiet")
    assert (a.path / "metrics.jsonl").read_bytes() == (b.path / "metrics.jsonl").read_bytes()
    record = a.metrics()[-1]
    assert {"train_d_loss", "train_g_loss", "val_fid", "val_modes", "val_min_class_share"} <= set(record)
    assert a.read_json("train.json")["monitor"] == "val_fid" and a.has("judge/model.safetensors")
    result = netwright.evaluate(a)
    m = result["metrics"]
    assert {"fid", "fid_untrained_generator", "fid_gaussian_noise", "modes"} <= set(m)
    assert a.has("eval/samples.png")
    v = netwright.export(a)
    assert v["passed"] and v["max_abs_diff"] <= 1e-4 and v["inputs"] == ["noise"]


def test_gan_resume_after_kill_matches_an_uninterrupted_run(tmp_path: Path):
    spec = gan_spec(epochs=12, conditional=True)
    spec["train"]["checkpoint_interval"] = 0
    path = tmp_path / "gan.yaml"
    path.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "netwright", "train", str(path), "--runs-dir", str(runs), "--quiet"]
    assert subprocess.run(cmd + ["--name", "full"], capture_output=True).returncode == 0
    proc = subprocess.Popen(cmd + ["--name", "killed"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = runs / "killed" / "checkpoints" / "last.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (last.is_file() and json.loads(last.read_text())["epoch"] >= 3):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (runs / "killed" / "train.json").exists()
    r = subprocess.run([sys.executable, "-m", "netwright", "train", str(runs / "killed"), "--resume", "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (runs / "killed" / "metrics.jsonl").read_text() == (runs / "full" / "metrics.jsonl").read_text()


def test_sample_pictures_and_tables(tmp_path: Path):
    run = netwright.train(gan_spec(conditional=True), name="c", progress="quiet")
    grid = netwright.sample(run, n=12, label=3)
    assert grid.name == "class-3.png" and grid.stat().st_size > 1000
    tab = netwright.train({"data": {"name": "iris"}, "model": {"name": "gan", "hidden": [16]},
                           "train": {"epochs": 2, "threads": 1, "adversarial": {"judge_epochs": 2}}},
                          name="iris-gan", progress="quiet")
    out = netwright.sample(tab, n=5, out=tmp_path / "rows.csv")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("sepal length (cm),") and len(lines) == 6


def test_gan_bad_input(cli, tmp_path: Path):
    bad = gan_spec()
    bad["train"]["label_smoothing"] = 0.1
    bad["train"]["optimizer"] = {"name": "sgd", "lr": 0.1}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    r = cli("train", tmp_path / "bad.yaml")
    assert_one_line_error(r, "train.optimizer: applies to supervised models", "train.label_smoothing")
    sup = {"data": {"name": "iris"}, "model": {"name": "mlp"}, "train": {"adversarial": {"d_steps": 2}}}
    (tmp_path / "sup.yaml").write_text(yaml.safe_dump(sup))
    assert_one_line_error(cli("train", tmp_path / "sup.yaml"), "train.adversarial: applies to GANs")
    (tmp_path / "reg.yaml").write_text(yaml.safe_dump({"data": {"name": "diabetes"}, "model": {"name": "gan"}}))
    assert_one_line_error(cli("train", tmp_path / "reg.yaml"), "model gan: needs class labels")
    run = netwright.train(gan_spec(), name="u", progress="quiet")
    assert_one_line_error(cli("sample", run.path, "--class", "3"), "unconditional GAN", "conditional: true")
    assert_one_line_error(cli("predict", run.path, "x.npy"), "predict applies to classifiers", "is a GAN", "netwright sample")
    assert_one_line_error(cli("compress", run.path), "compress applies to classifiers", "is a GAN")
