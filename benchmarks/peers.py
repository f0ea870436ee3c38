"""netwright beside the tools a user would pick instead: a hand-written PyTorch loop,
PyTorch Lightning and Keras 3 (torch backend).

Every row trains the same architecture on the same data (netwright's loader: same split,
same normalisation), with the same batch size, optimizer (Adam), learning rate, number of
epochs (so the same number of steps), per-epoch validation and thread count. Each
framework runs in a fresh process; the time is measured inside it, from after imports and
data loading to the end of training and test scoring, so interpreter start-up and
import time (seconds for Keras and Lightning) are not counted against anyone
(``netwright.train`` loads its data itself: a few milliseconds are counted against it). Repeats
alternate frameworks; the table shows medians.

Lightning and Keras come from the optional ``bench`` extra:

    .venv/bin/pip install -c constraints.txt -e '.[bench]'
    .venv/bin/python benchmarks/peers.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

FRAMEWORKS = ["raw", "netwright", "lightning", "keras"]
CASES = {
    "mlp / digits": {"data": "digits", "model": {"name": "mlp", "hidden": [128, 64]}, "epochs": 30, "batch": 64,
                     "lr": 1e-3},
    "cnn / digits": {"data": "digits", "model": {"name": "cnn", "channels": [32, 64], "hidden": [128], "norm": "none"},
                     "epochs": 10, "batch": 64, "lr": 1e-3},
    "gru / mnist1d": {"data": "mnist1d", "model": {"name": "rnn", "cell": "gru", "hidden_size": 64}, "epochs": 5,
                      "batch": 100, "lr": 1e-2},
}


def spec_for(case: dict, threads: int) -> dict:
    return {"data": {"name": case["data"]}, "model": case["model"],
            "train": {"epochs": case["epochs"], "batch_size": case["batch"], "threads": threads,
                      "optimizer": {"name": "adam", "lr": case["lr"]}}}


# ---------------------------------------------------------------------- workers (one per process)


def work_raw(case: dict, data, threads: int) -> float:
    import torch
    import torch.nn.functional as F

    from netwright.models import build_model

    torch.manual_seed(0)
    model = build_model(case["model"]["name"], data.info,
                        **{k: v for k, v in case["model"].items() if k != "name"})
    opt = torch.optim.Adam(model.parameters(), lr=case["lr"])
    x, y, xv, yv = data.train.x, data.train.y, data.val.x, data.val.y
    n, bs = len(y), case["batch"]
    for _ in range(case["epochs"]):
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            (model(xv).argmax(1) == yv).float().mean().item()
    with torch.no_grad():
        return (model(data.test.x).argmax(1) == data.test.y).float().mean().item()


def work_netwright(case: dict, data, threads: int) -> float:
    import netwright

    with tempfile.TemporaryDirectory() as runs:
        run = netwright.train(spec_for(case, threads), name="peer", runs_dir=runs, progress="quiet")
        return netwright.evaluate(run, plots=False)["metrics"]["accuracy"]


def work_lightning(case: dict, data, threads: int) -> float:
    import lightning as L
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from netwright.models import build_model

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = build_model(case["model"]["name"], data.info,
                                   **{k: v for k, v in case["model"].items() if k != "name"})

        def training_step(self, batch, _):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=case["lr"])

    torch.manual_seed(0)
    module = Module()
    train = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=case["batch"], shuffle=True)
    val = DataLoader(TensorDataset(data.val.x, data.val.y), batch_size=1024)
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(max_epochs=case["epochs"], accelerator="cpu", devices=1, default_root_dir=root,
                            enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module, train, val)
    module.eval()
    with torch.no_grad():
        return (module.net(data.test.x).argmax(1) == data.test.y).float().mean().item()


def work_keras(case: dict, data, threads: int) -> float:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    m = case["model"]
    shape = tuple(data.info.input_shape)
    layers = [keras.Input(shape)]
    if m["name"] == "mlp":
        layers += [keras.layers.Flatten()] + [keras.layers.Dense(h, activation="relu") for h in m["hidden"]]
    elif m["name"] == "cnn":
        for c in m["channels"]:
            layers += [keras.layers.Conv2D(c, 3, padding="same", activation="relu", data_format="channels_first"),
                       keras.layers.MaxPooling2D(2, data_format="channels_first")]
        layers += [keras.layers.Flatten()] + [keras.layers.Dense(h, activation="relu") for h in m["hidden"]]
    else:  # GRU over the sequence, steps along the last axis
        layers = [keras.Input((shape[1], shape[0])), keras.layers.GRU(m["hidden_size"])]
    model = keras.Sequential(layers + [keras.layers.Dense(data.info.num_classes)])
    model.compile(optimizer=keras.optimizers.Adam(case["lr"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])

    def arr(x):
        a = x.numpy()
        return a.transpose(0, 2, 1) if m["name"] == "rnn" else a

    model.fit(arr(data.train.x), data.train.y.numpy(), batch_size=case["batch"], epochs=case["epochs"],
              validation_data=(arr(data.val.x), data.val.y.numpy()), verbose=0, shuffle=True)
    logits = model.predict(arr(data.test.x), verbose=0, batch_size=1024)
    return float((np.argmax(logits, 1) == data.test.y.numpy()).mean())


def worker(framework: str, case_name: str, threads: int) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import torch
    import torch._dynamo  # noqa: F401  (torch optimizers import it on first use: ~1 s, for every framework)

    torch.set_num_threads(threads)
    from netwright import load_dataset, load_spec

    case = CASES[case_name]
    fn = globals()[f"work_{framework}"]
    if framework == "keras":
        import keras  # noqa: F401  (imported before the clock starts, like the others)
    if framework == "lightning":
        import lightning  # noqa: F401
    data = load_dataset(load_spec(spec_for(case, threads)).data)
    t0 = time.perf_counter()
    acc = fn(case, data, threads)
    print(json.dumps({"seconds": time.perf_counter() - t0, "accuracy": acc}))


# ---------------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--frameworks", nargs="*", default=FRAMEWORKS)
    ap.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.threads)
        return
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONWARNINGS": "ignore"}
    results: dict[tuple[str, str], list[dict]] = {}
    for case in args.cases:
        for _ in range(args.repeats):
            for fw in args.frameworks:
                p = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--worker", fw, case],
                                   capture_output=True, text=True, env=env)
                if p.returncode != 0:
                    sys.exit(f"{fw} on {case} failed:\n{p.stderr[-2000:]}")
                results.setdefault((case, fw), []).append(json.loads(p.stdout.strip().splitlines()[-1]))
                print(f"  {case} {fw}: {results[(case, fw)][-1]}", file=sys.stderr, flush=True)
    import torch

    print(f"\ntorch {torch.__version__}, {args.threads} thread(s), {args.repeats} fresh processes per cell, medians\n")
    print("| case | " + " | ".join(f"{fw} s" for fw in args.frameworks) + " | "
          + " | ".join(f"{fw}/raw" for fw in args.frameworks if fw != "raw") + " | test acc "
          + " / ".join(args.frameworks) + " |")
    print("|---|" + "---:|" * (2 * len(args.frameworks) - 1) + "---:|")
    for case in args.cases:
        t = {fw: statistics.median(r["seconds"] for r in results[(case, fw)]) for fw in args.frameworks}
        a = {fw: statistics.median(r["accuracy"] for r in results[(case, fw)]) for fw in args.frameworks}
        print(f"| {case} | " + " | ".join(f"{t[fw]:.2f}" for fw in args.frameworks) + " | "
              + " | ".join(f"{t[fw] / t['raw']:.2f}" for fw in args.frameworks if fw != "raw") + " | "
              + " / ".join(f"{a[fw]:.3f}" for fw in args.frameworks) + " |")


if __name__ == "__main__":
    main()
