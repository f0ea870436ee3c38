"""The training loop shared by every task: epochs, batches, validation, best weights,
early stopping, checkpoints and resume, metrics files and progress."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import statistics
import resource
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..data.augment import Augmenter
from ..data.info import Dataset, Split
from ..data.roles import take
from ..data.stream import StreamedSplit
from ..errors import CallbackFailed, NetwrightError, TrainingError, TrainingInterrupted
from ..metrics import lower_is_better
from ..run import METRICS, TIMING, TRAIN, WEIGHTS, Run
from ..spec import Spec
from ..tasks.base import Task
from ..tasks.supervised import collect_outputs
from ..atomic import write_jsonl
from .checkpoint import load_checkpoint, save_checkpoint, save_weights
from .distributed import Dist, all_sum
from .optim import build_scheduler
from .progress import TrainingProgress
from .time_to import quality_metric, time_to_levels


def callback_name(cb: Any) -> str:
    return getattr(cb, "name", type(cb).__name__)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, e.g. (run seed, epoch, stream), mixed with splitmix64."""
    mask = (1 << 64) - 1
    z = 0x9E3779B97F4A7C15
    for p in parts:
        z = (z ^ (p & mask)) * 0xBF58476D1CE4E5B9 & mask
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & mask
        z ^= z >> 31
    return z >> 1


class Trainer:
    """Fits ``model`` with ``task`` on ``data`` as ``spec.train`` says, writing into ``run``."""

    def __init__(self, model: nn.Module, task: Task, data: Dataset, spec: Spec, run: Run,
                 device: torch.device, progress: TrainingProgress, channels_last: bool = False,
                 precision: str = "fp32", extras: dict[str, torch.Tensor] | None = None, dist: Dist | None = None,
                 frozen: list[nn.Module] | None = None, precision_reason: str | None = None,
                 flops_per_example: int | None = None, callbacks: list[Any] | None = None):
        self.dist = dist or Dist()
        self.callbacks = list(callbacks or [])  # netwright.training.callbacks.Callback instances
        self.frozen = frozen or []  # kept in eval mode while the rest trains
        self.module = model  # the network itself: its weights are what checkpoints hold
        if self.dist.active:  # gradients are averaged over the ranks in backward
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        self.model, self.task, self.data, self.spec, self.run = model, task, data, spec, run
        self.device, self.progress = device, progress
        self.settings = {"precision": precision, "channels_last": channels_last, "compiled": spec.train.compile}
        if precision_reason:
            self.settings["precision_reason"] = precision_reason
        self.flops_per_example = flops_per_example  # forward FLOPs of one example, for the compute report
        ts = spec.train
        self.stream = isinstance(data.train, StreamedSplit)  # a table bigger than memory: batches read from disk
        if device.type == "cuda" and not self.stream:  # one pinned, asynchronous copy of the training split to the GPU
            self.x = data.train.x.pin_memory().to(device, non_blocking=True)
            self.y = data.train.y.pin_memory().to(device, non_blocking=True)
        else:
            self.x, self.y = data.train.x, data.train.y
        if channels_last:  # batches gathered from a channels-last tensor stay channels-last
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        # per-example tensors a task needs beside inputs and targets (sample weights, group codes)
        self.extras = {k: v.to(device) for k, v in (extras or {}).items()}
        n = len(data.train)
        # a streamed table read by several ranks: each reads its own row groups (StreamedSplit.shard)
        # in batches of its share of the global batch, as many as the rank with the fewest rows fills
        self.shard = (self.dist.rank, self.dist.world) if self.stream and self.dist.world > 1 else None
        if self.shard:
            self.local_batch = max(1, ts.batch_size // self.dist.world)
            self.steps_per_epoch = min(data.train.shard_rows(self.dist.world)) // self.local_batch
            if self.steps_per_epoch < 1:
                raise TrainingError(f"train.batch_size {ts.batch_size}: a rank's share of the streamed rows does "
                                    "not fill one batch; lower it, or train in fewer processes")
            self.n_used = self.steps_per_epoch * self.local_batch * self.dist.world
            self.settings["rows_per_rank"] = data.train.shard_rows(self.dist.world)  # each reads its own groups
        else:
            # a trailing batch of one example (batch norm cannot train on it), or of fewer examples
            # than there are ranks, is dropped for the epoch
            tail = n % ts.batch_size
            self.n_used = n - tail if (tail == 1 or 0 < tail < self.dist.world) and n > tail else n
            self.steps_per_epoch = math.ceil(self.n_used / ts.batch_size)
        task.fit_to(data.train)  # what the step learns from the train split first (class weights)
        self.augment = Augmenter(ts.augment, data.info.modality, data.info.num_classes)  # reseeded every epoch
        # train.budget_s: the schedule is as long as the epochs that fit, from a measured step time
        self.epochs = self._epochs_in_budget() if ts.budget_s else ts.epochs
        self.optimizers = task.optimizers(model)
        self.schedulers = self._schedulers()
        self.shuffle = torch.Generator()
        draw = task.sampling_weights(data.train.y)  # None: each example once an epoch
        self.draw = None if draw is None else draw.double().cpu()
        if self.stream and (self.draw is not None or self.extras):
            raise NetwrightError("a streamed table is read in a shuffled order of its row groups: train.sampler: "
                                 "balanced and per-example fairness terms need it in memory (data.stream: false)")
        self.monitor = self._monitor()
        self.minimize = lower_is_better(self.monitor)
        # "batch" and "partial": how far into epoch + 1 a checkpoint taken inside it had got
        self.state: dict[str, Any] = {"epoch": 0, "step": 0, "batch": 0, "partial": None,
                                      "best_value": None, "best_epoch": None,
                                      "bad_epochs": 0, "stopped_early": False, "finished": False,
                                      "history": [], "timing": [], "epochs_planned": self.epochs}
        self.best: dict[str, torch.Tensor] | None = None
        # train.ema: a moving average of the weights, updated after every step, which validation,
        # the kept weights and checkpoints use; (average, live) pairs of state tensors
        self.ema = {k: v.detach().clone() for k, v in self.module.state_dict().items()} if ts.ema else None
        pairs = [(self.ema[k], v) for k, v in self.module.state_dict().items()] if self.ema else []
        self._ema_floats = [p for p in pairs if p[0].is_floating_point()]  # averaged
        self._ema_counts = [p for p in pairs if not p[0].is_floating_point()]  # copied (batch-norm counters)
        if ts.stop_at is not None:
            self.stop_metric = self._known_metric(ts.stop_at.metric if ts.stop_at.metric.startswith(("val_", "train_"))
                                                  else f"val_{ts.stop_at.metric}", "train.stop_at.metric")
        # file writes are throttled so that tiny epochs do not pay for I/O: metrics at most
        # once a second, checkpoints every train.checkpoint_interval seconds (after a step, inside
        # an epoch too, in a single process), both at the end
        self._next_log = 0.0
        self._logged = -1  # rows of the history in metrics.jsonl as last written (-1: not yet)
        self._next_checkpoint = time.monotonic() + ts.checkpoint_interval
        self._rng: dict[str, torch.Tensor] = {}  # generator states to restore (resume inside an epoch)
        self._augment_np: dict[str, Any] | None = None  # and the augmenter's NumPy generator state
        self._inside: tuple[int, int] | None = None  # (epoch, batch) of the checkpoint whose hooks run now
        self._signal: int | None = None  # SIGINT or SIGTERM received: stop after this step

    def _schedulers(self) -> list[Any]:
        ts = self.spec.train
        constant = ts.schedule.name == "constant" and not ts.schedule.warmup_epochs
        return [] if constant else [build_scheduler(o, ts.schedule, ts.optimizer, self.steps_per_epoch, self.epochs)
                                    for o in self.optimizers]

    def _epochs_in_budget(self) -> int:
        """How many epochs fit in ``train.budget_s`` (1 to ``train.epochs``): a few steps timed on
        a copy of the model (the run's own weights and generators untouched), validation counted
        as forward passes at a third of a step's cost per example. Every rank agrees on one number."""
        import copy

        ts = self.spec.train
        if self.stream:  # no batches to time before the stream starts: the budget only stops training
            return ts.epochs
        model = copy.deepcopy(self.module)
        optimizers = self.task.optimizers(model)
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.spec.seed))
        bs, warm, steps = ts.batch_size, 2, min(self.steps_per_epoch, 6)
        state = torch.default_generator.get_state()
        model.train()
        timed = []
        for i in range(warm + steps):  # the first steps warm up (kernels chosen, memory taken) and are not counted
            idx = order[(i % self.steps_per_epoch) * bs:(i % self.steps_per_epoch + 1) * bs]
            t0 = time.perf_counter()  # a step as an epoch takes it: gathered, augmented, trained
            batch = self.augment(self.x[idx].to(self.device), self.y[idx].to(self.device))
            if self.extras:
                batch = (*batch, {k: v[idx.to(v.device)] for k, v in self.extras.items()})
            self.task.train_step(model, batch, optimizers)
            timed.append(time.perf_counter() - t0)
        torch.default_generator.set_state(state)
        step = statistics.median(timed[warm:])  # a step slowed by another process does not set the plan
        evaluated = len(self.data.val) if self.data.val is not None else 0
        epoch = step * self.steps_per_epoch + step / 3 * evaluated / bs
        fit = max(1, min(ts.epochs, int(ts.budget_s / max(epoch, 1e-9))))
        if self.dist.active:
            fit = int(all_sum([float(fit)], self.dist)[0] / self.dist.world)
        return fit

    def _known_metric(self, metric: str, key: str) -> str:
        """``metric`` when it is a column of metrics.jsonl (``val_*`` only with a validation split)."""
        known = (["val_" + k for k in self.task.metric_names] if self.data.val is not None else []) + ["train_loss"]
        if metric not in known:
            raise NetwrightError(f"{key}: unknown metric '{metric}'; choose from {', '.join(known)}")
        return metric

    def _monitor(self) -> str:
        ts = self.spec.train
        if self.data.val is None:
            if ts.monitor not in ("auto", "train_loss"):
                raise NetwrightError(f"train.monitor: {ts.monitor} needs a validation split; set data.val above 0 "
                                     "or monitor train_loss")
            if ts.early_stopping.patience:
                raise NetwrightError("train.early_stopping needs a validation split; set data.val above 0")
            return "train_loss"
        return self._known_metric(self.task.default_monitor if ts.monitor == "auto" else ts.monitor, "train.monitor")

    # ------------------------------------------------------------------ resume

    def resume(self) -> None:
        """Continue from ``checkpoints/last.safetensors``: at the batch it was taken after (one inside
        an epoch) or at the start of the epoch after it."""
        folder = self.run.file("checkpoints")
        if not (folder / "last.safetensors").is_file():
            raise NetwrightError(f"{self.run.path}: no checkpoint to resume from (checkpoints/last.safetensors); "
                                 "start a new run instead")
        planned = json.loads((folder / "last.json").read_text()).get("epochs_planned", self.spec.train.epochs)
        if planned != self.epochs:  # a budget measured again: the checkpoint's schedule goes on
            self.epochs = planned
            self.schedulers = self._schedulers()
        self.state, self.best = load_checkpoint(folder, self.module, self.optimizers, self.schedulers)
        ema = self.state.pop("ema", None)
        if self.ema is not None and ema is not None:
            for k, v in ema.items():
                self.ema[k].copy_(v)
        self._rng = self.state.pop("rng")
        self._augment_np = self.state.pop("augment_np", None)  # generator state, not trainer state
        self.state.setdefault("batch", 0)
        self.state.setdefault("partial", None)

    # ------------------------------------------------------------------ loop

    def fit(self) -> dict[str, Any]:
        ts = self.spec.train
        st = self.state
        if st["finished"]:
            self.progress.message(f"{self.run.path} finished already (epoch {st['epoch']}); nothing to resume")
            return self._summary()
        self.progress.start(self.epochs, self.steps_per_epoch, st["epoch"])
        self._hook("on_train_start", st)
        with self._interruptible():
            try:
                for epoch in range(st["epoch"] + 1, self.epochs + 1):
                    t0 = time.perf_counter()
                    record = self._epoch(epoch)
                    seconds = time.perf_counter() - t0
                    stop = self._after_epoch(epoch, record, seconds)
                    self.progress.epoch_end(record, seconds, st["step"], self.monitor)
                    asked = self._hook("on_epoch_end", record)
                    if self.dist.active and self.callbacks:  # every rank stops at the same epoch
                        asked = asked or (["callback on rank 0"] if all_sum([float(bool(asked))], self.dist)[0]
                                          else [])
                    if asked and not stop:
                        st["stopped_by"] = asked[0]
                        self.progress.message(f"stopped by callback {asked[0]} after epoch {epoch}")
                        break
                    limit = self._limit(record, epoch)
                    if limit and not stop:
                        st["stopped_by"] = limit[0]
                        self.progress.message(f"stopped after epoch {epoch}: {limit[1]}")
                        break
                    if stop:
                        self.progress.message(f"early stopping: {self.monitor} has not improved for "
                                              f"{st['bad_epochs']} epochs; best was epoch {st['best_epoch']}")
                        break
                    if self._signal is not None and epoch < self.epochs:
                        self._interrupted(epoch + 1, 0, 0.0, {})
            finally:
                self.progress.close()
        return self._finish()

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop training after the step in progress, with a checkpoint at that
        step; a second signal stops at once. One process only: ranks could stop at different steps."""
        if self.dist.active or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum: int, frame: Any) -> None:
            if self._signal is not None:  # asked twice: stop now
                for s, h in previous.items():
                    signal.signal(s, h)
                raise KeyboardInterrupt
            self._signal = signum

        for s in previous:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _interrupted(self, epoch: int, batch: int, total: float, parts: dict[str, float]) -> None:
        """Write a checkpoint after ``batch`` steps of ``epoch`` and stop."""
        self._save_inside(batch, total, parts)
        where = f"epoch {epoch}, step {batch} of {self.steps_per_epoch}" if batch else f"the end of epoch {epoch - 1}"
        raise TrainingInterrupted(f"{signal.Signals(self._signal).name}: stopped at {where} with a checkpoint; "
                                  f"resume with: netwright train {self.run.home} --resume", self._signal)

    def _save_inside(self, batch: int, total: float, parts: dict[str, float]) -> None:
        """Write a checkpoint after ``batch`` steps of the epoch in progress (0: before its first
        step, i.e. at the end of the one before) that ``_epoch`` resumes at that batch: the loss
        sums so far and the random generators' states ride along. The live ``self.state`` is left
        as it was (``batch`` 0, ``partial`` None): the checkpoint holds a copy, so nothing of it
        leaks into a later checkpoint at an epoch end."""
        st = self.state
        saved = {**st, "batch": batch, "partial": {"total": total, "parts": dict(parts)} if batch else None}
        rng = None
        if batch:  # an epoch reseeds its generators at its start: only a resume inside one needs them
            rng = {"default": torch.default_generator.get_state(), "augment": self.augment.gen.get_state()}
            if self.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(self.device)
            saved["augment_np"] = self.augment.rng.bit_generator.state
        if self._logged != len(st["history"]):  # the metrics files match the checkpoint
            self._write_metrics()
        save_checkpoint(self.run.file("checkpoints"), self.module, self.optimizers, self.schedulers,
                        self.best, saved, rng=rng, ema=self.ema)

    def _write_metrics(self) -> None:
        """metrics.jsonl and timing.jsonl from the state (no fsync: a checkpoint rebuilds them)."""
        write_jsonl(self.run.file(METRICS), self.state["history"], durable=False)
        write_jsonl(self.run.file(TIMING), self.state["timing"], durable=False)
        self._logged = len(self.state["history"])

    def _checkpointed(self) -> None:
        """After a periodic checkpoint: move a new run home, tell the callbacks, set the next time."""
        self.run.checkpointed()
        self._hook("on_checkpoint", self.run.file("checkpoints/last.safetensors"))
        self._next_checkpoint = time.monotonic() + self.spec.train.checkpoint_interval

    def _batches(self, order_seed: int, first: int) -> Iterator[tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]]:
        """The epoch's global batches from batch ``first`` on: ``(indices, inputs, targets)``; the
        order is a function of ``order_seed`` alone (a streamed table: its block-shuffled order,
        no indices)."""
        bs = self.spec.train.batch_size
        if self.shard:  # this rank's own row groups, in batches of its share
            for xb, yb in self.data.train.batches(self.local_batch, order_seed, start=first,
                                                  stop=self.steps_per_epoch, shard=self.shard):
                yield None, xb.to(self.device), yb.to(self.device)
            return
        if self.stream:
            for xb, yb in self.data.train.batches(bs, order_seed, start=first, stop=self.steps_per_epoch):
                yield None, xb.to(self.device), yb.to(self.device)
            return
        order = self.shuffle.manual_seed(order_seed)
        perm = torch.randperm(len(self.y), generator=order) if self.draw is None else \
            torch.multinomial(self.draw, len(self.y), replacement=True, generator=order)
        perm = perm[: self.n_used].to(self.device)
        for b in range(first, self.steps_per_epoch):
            idx = perm[b * bs:(b + 1) * bs]
            yield idx, self.x[idx], self.y[idx]

    def _epoch(self, epoch: int) -> dict[str, Any]:
        ts, st = self.spec.train, self.state
        seed = self.spec.seed
        # dropout and other global draws; torch.manual_seed would also seed every lazy
        # accelerator backend, which costs a millisecond a call
        torch.default_generator.manual_seed(derive_seed(seed, epoch, 0))
        if self.device.type == "cuda":
            torch.cuda.manual_seed(derive_seed(seed, epoch, 0))
        if self.augment.enabled:
            self.augment.reseed(derive_seed(seed, epoch, 2))
        self.model.train()
        for m in self.frozen:
            m.eval()
        self.task.start_epoch(epoch, self.epochs)
        total, bs, n = 0.0, ts.batch_size, self.n_used
        parts: dict[str, float] = {}
        first = st["batch"]  # > 0: resuming inside this epoch, where the checkpoint was taken
        if first:
            total, parts = st["partial"]["total"], dict(st["partial"]["parts"])
            if self.dist.rank:  # resumed in several processes: the sums so far are counted once, on rank 0
                total, parts = 0.0, dict.fromkeys(parts, 0.0)
            torch.default_generator.set_state(self._rng["default"])
            self.augment.gen.set_state(self._rng["augment"])
            self.augment.rng.bit_generator.state = self._augment_np
            if "cuda" in self._rng:
                torch.cuda.set_rng_state(self._rng["cuda"], self.device)
            st["batch"], st["partial"] = 0, None
            self._rng, self._augment_np = {}, None
        # periodic checkpoints inside an epoch: a single process only. Each rank of a distributed
        # job sums the loss of its own share of the batches, so one rank's partial total is not
        # the epoch's: those jobs checkpoint at epoch ends (where the totals are summed) only
        inside = not self.dist.active and ts.checkpoint_interval > 0  # 0: at epoch ends only
        rank, world = self.dist.rank, self.dist.world
        for b, (idx, xb, yb) in enumerate(self._batches(derive_seed(seed, epoch, 1), first), start=first):
            if world > 1 and not self.shard:  # this rank's share of the global batch; DDP averages the shares' gradients,
                part = slice(rank, None, world)  # so a share's loss is scaled to its weight in the global mean
                self.task.loss_scale = self.task.share(yb[part], yb) * world
                idx, xb, yb = (None if idx is None else idx[part]), xb[part], yb[part]
            xb, yb = self.augment(xb, yb)
            batch = (xb, yb, {k: v[idx] for k, v in self.extras.items()}) if self.extras else (xb, yb)
            out = self.task.train_step(self.model, batch, self.optimizers)
            if isinstance(out, dict):  # one loss per network (a GAN)
                values = {k: float(v) for k, v in out.items()}
                for k, v in values.items():
                    parts[k] = parts.get(k, 0.0) + v * len(yb)
                loss = sum(values.values())
            else:
                loss = float(out)
            if not math.isfinite(loss):
                last = st["epoch"] if self.run.has("checkpoints/last.safetensors") else None
                kept = f"the last good checkpoint (epoch {last}) is kept" if last else "no checkpoint was written"
                raise TrainingError(f"loss became {loss} at epoch {epoch}, step {b + 1} (global step "
                                    f"{st['step'] + 1}); {kept}; lower train.optimizer.lr or set train.grad_clip")
            for s in self.schedulers:
                s.step()
            if self.ema is not None:
                self._ema_update()
            total += loss * len(yb)
            st["step"] += 1
            self.progress.step(epoch, st["step"], loss)
            if self._signal is not None and b + 1 < self.steps_per_epoch:
                self._interrupted(epoch, b + 1, total, parts)
            if inside and b + 1 < self.steps_per_epoch and time.monotonic() >= self._next_checkpoint:
                self._save_inside(b + 1, total, parts)
                self._inside = (epoch, b + 1)  # a callback failing in on_checkpoint keeps this checkpoint
                try:
                    self._checkpointed()
                finally:
                    self._inside = None
        if self.dist.active:  # losses summed over every rank's examples
            sums = all_sum([total, *parts.values()], self.dist)
            total, parts = sums[0], dict(zip(parts, sums[1:]))
        record: dict[str, Any] = {"epoch": epoch, "step": st["step"],
                                  "lr": self.optimizers[0].param_groups[0]["lr"],
                                  "train_loss": total / self.n_used,
                                  **{f"train_{k}": v / self.n_used for k, v in parts.items()}}
        if self.data.val is not None:  # the rows that choose the kept epoch (netwright.data.roles)
            with self._averaged():
                outputs = take(collect_outputs(self.module, self.task, self.data.val, ts.eval_batch_size, self.device),
                               self.task.val_rows(len(self.data.val), "select", self.spec.data.split_seed))
            # a diverged validation metric is recorded as null (JSON has no NaN) and never "improves"
            record.update({f"val_{k}": v if math.isfinite(v) else None for k, v in self.task.metrics(outputs).items()})
        return record

    def _after_epoch(self, epoch: int, record: dict[str, Any], seconds: float) -> bool:
        """Book-keeping after an epoch; returns True when early stopping triggers."""
        ts, st = self.spec.train, self.state
        st["epoch"] = epoch
        st["history"].append(record)
        st["timing"].append({"epoch": epoch, "seconds": round(seconds, 4),
                             "samples_per_s": round(self.n_used / max(seconds, 1e-9), 1)})
        value = record[self.monitor]
        best = st["best_value"]
        delta = ts.early_stopping.min_delta
        improved = value is not None and (
            best is None or (value < best - delta if self.minimize else value > best + delta))
        # a score that ties its best (an F1 of a few validation rows stays put for epochs) improves
        # when the validation loss does: the kept epoch is not the first of a plateau
        loss = record.get("val_loss")
        tied = (not improved and value is not None and best is not None and abs(value - best) <= delta
                and self.monitor != "val_loss" and loss is not None and st.get("best_loss") is not None
                and loss < st["best_loss"])
        if improved or tied:
            st["best_value"], st["best_epoch"], st["bad_epochs"] = (best if tied else value), epoch, 0
            st["best_loss"] = loss
            if ts.keep == "best":
                weights = self.ema if self.ema is not None else self.module.state_dict()
                self.best = {k: v.detach().clone() for k, v in weights.items()}
        else:
            st["bad_epochs"] += 1
        patience = ts.early_stopping.patience
        stop = bool(patience and st["bad_epochs"] >= patience)
        st["stopped_early"] = stop
        now = time.monotonic()
        last = stop or epoch == self.epochs  # _finish writes the final checkpoint
        checkpoint = not last and now >= self._next_checkpoint
        if self.dist.main and (last or checkpoint or now >= self._next_log):
            self._write_metrics()
            self._next_log = now + 1.0
        if checkpoint and self.dist.main:
            self._save_inside(0, 0.0, {})  # batch 0 of the next epoch: this epoch's end
            self._checkpointed()
        return stop

    def _ema_update(self) -> None:
        """average <- decay x average + (1 - decay) x weights, for every floating state tensor
        (batch-norm statistics too); counters are copied."""
        with torch.no_grad():
            if self._ema_floats:
                torch._foreach_lerp_([a for a, _ in self._ema_floats], [w for _, w in self._ema_floats],
                                     1.0 - self.spec.train.ema)
            for a, w in self._ema_counts:
                a.copy_(w)

    @contextlib.contextmanager
    def _averaged(self) -> Iterator[None]:
        """The moving average in the model for the block (validation), the live weights after it."""
        if self.ema is None:
            yield
            return
        live = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        self.module.load_state_dict(self.ema)
        try:
            yield
        finally:
            self.module.load_state_dict(live)

    def _limit(self, record: dict[str, Any], epoch: int) -> tuple[str, str] | None:
        """(key, why) when ``train.stop_at`` is reached or the next epoch would end past
        ``train.budget_s``; every rank of a job decides alike."""
        ts, reason = self.spec.train, None
        if ts.stop_at is not None:
            v = record.get(self.stop_metric)
            low = lower_is_better(self.stop_metric)
            if v is not None and (v <= ts.stop_at.value if low else v >= ts.stop_at.value):
                reason = ("stop_at", f"{self.stop_metric} {v:.4g} reached train.stop_at {ts.stop_at.value:g}")
        if reason is None and ts.budget_s and epoch < self.epochs:
            spent = sum(t["seconds"] for t in self.state["timing"])
            if spent + spent / len(self.state["timing"]) > ts.budget_s:
                reason = ("budget_s", f"{spent:.1f} s of training, and another epoch would pass train.budget_s "
                                      f"{ts.budget_s:g}")
        if self.dist.active and (ts.stop_at is not None or ts.budget_s):
            if all_sum([float(reason is not None)], self.dist)[0] and reason is None:
                reason = ("budget_s" if ts.budget_s else "stop_at", "another rank reached its limit")
        return reason

    def _finish(self) -> dict[str, Any]:
        st = self.state
        if self.spec.train.keep == "best" and self.best is not None:
            self.module.load_state_dict(self.best)
        elif self.ema is not None:  # the last weights are the average's
            self.module.load_state_dict(self.ema)
        st["finished"] = True
        summary = self._summary()
        if self.dist.main:
            save_weights(self.run.file(WEIGHTS), self.module.state_dict(),
                         {"model": self.spec.model.name,
                          "epoch": st["best_epoch"] if self.spec.train.keep == "best" else st["epoch"]})
            save_checkpoint(self.run.file("checkpoints"), self.module, self.optimizers, self.schedulers, self.best, st,
                            ema=self.ema)
            self.run.write_json(TRAIN, summary)
            self._hook("on_checkpoint", self.run.file("checkpoints/last.safetensors"))
            self._hook("on_train_end", summary)
        return summary

    def _hook(self, hook: str, *args: Any) -> list[str]:
        """Call ``hook`` of every callback (on rank 0 only, unless a callback sets ``all_ranks``);
        returns the names of those that ask to stop. A callback that raises ends training with a
        checkpoint at the end of the last whole epoch and one line naming it."""
        asked = []
        for cb in self.callbacks:
            if not (self.dist.main or getattr(cb, "all_ranks", False)):
                continue
            try:
                if getattr(cb, hook)(self.run, *args):
                    asked.append(callback_name(cb))
            except (KeyboardInterrupt, TrainingInterrupted):
                raise
            except Exception as e:
                self._callback_failed(callback_name(cb), hook, e)
        return asked

    def _callback_failed(self, name: str, hook: str, error: Exception) -> None:
        st = self.state
        # in on_checkpoint of a checkpoint inside an epoch, or in on_train_start of a run resumed
        # from one: that checkpoint resumes exactly; one at the end of the last whole epoch would
        # pair this state with weights trained further
        inside = self._inside or ((st["epoch"] + 1, st["batch"]) if st["batch"] else None)
        if self.dist.main and not st["finished"] and inside is None:
            self._write_metrics()
            save_checkpoint(self.run.file("checkpoints"), self.module, self.optimizers, self.schedulers,
                            self.best, st, ema=self.ema)
        problem = str(error) if isinstance(error, NetwrightError) else f"{type(error).__name__}: {error}"
        where = (f"epoch {inside[0]}, step {inside[1]} of {self.steps_per_epoch}" if inside
                 else f"the end of epoch {st['epoch']}")
        then = ("training had finished; the weights and train.json are written" if st["finished"] else
                f"a checkpoint is written at {where}; fix it and resume with: "
                f"netwright train {self.run.home} --resume")
        raise CallbackFailed(f"callback {name} failed in {hook}: {problem}; {then}") from error

    def _summary(self) -> dict[str, Any]:
        st = self.state
        history = st["history"]
        final = history[-1] if history else {}
        best = next((r for r in history if r["epoch"] == st["best_epoch"]), final)
        return {
            "finished": st["finished"],
            "epochs": st["epoch"],
            "steps": st["step"],
            "stopped_early": st["stopped_early"],
            **({"stopped_by": st["stopped_by"]} if st.get("stopped_by") else {}),
            **({"callbacks": [callback_name(cb) for cb in self.callbacks]}
               if self.callbacks else {}),
            "monitor": self.monitor,
            **({"epochs_planned": self.epochs, "budget_s": self.spec.train.budget_s} if self.spec.train.budget_s else {}),
            "best_epoch": st["best_epoch"],
            "best_value": st["best_value"],
            "kept": self.spec.train.keep,
            "final": final,
            "best": best,
            "seconds": round(sum(t["seconds"] for t in st["timing"]), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "device": str(self.device),
            **self.settings,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "processes": self.dist.world,
            **({"compute": self._compute()} if self.flops_per_example and st["timing"] else {}),
            **({"time_to": reached} if (reached := self._time_to()) else {}),
        }

    def _time_to(self) -> dict[str, Any] | None:
        """When validation first reached 90/95/99% of the run's best (``netwright.training.time_to``)."""
        history = self.state["history"]
        metric = quality_metric(history, self.monitor)
        return time_to_levels(history, self.state["timing"], metric, lower_is_better(metric), self.n_used)

    def _compute(self) -> dict[str, Any]:
        """Training FLOP/s (3 x forward FLOPs per example, for forward and backward, x the median
        samples/s of the epochs) beside this machine's measured matmul peak for the precision used."""
        from ..hardware import peak_flops

        rate = statistics.median(t["samples_per_s"] for t in self.state["timing"])  # the job's: every rank's share
        achieved = 3 * self.flops_per_example * rate
        per_process = achieved / self.dist.world
        # a rate above the cached peak has the peak measured again (never a fraction above 1)
        peak = peak_flops(self.device.type, self.settings["precision"], torch.get_num_threads(), per_process)
        return {"flops_per_example": 3 * self.flops_per_example, "samples_per_s": rate,
                "flop_per_s": round(achieved), "peak_flop_per_s": round(peak["flop_per_s"]),
                "fraction_of_peak": float(f"{per_process / peak['flop_per_s']:.4g}"), "peak": peak["method"],
                "peak_measured_at": peak["measured_at"],
                "method": "3 x forward FLOPs (torch.utils.flop_counter) per example x median samples/s of the "
                          "epochs (validation included), per process against the peak of the same precision "
                          "and threads"}
