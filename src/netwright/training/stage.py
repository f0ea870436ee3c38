"""The ``train`` stage: spec -> data -> model -> trainer -> run directory."""

from __future__ import annotations

import contextlib

import os
from pathlib import Path
from typing import Any

import torch

from ..data import load_dataset
from ..data.missing import describe as describe_missing
from ..fairness.mitigation import check_groups, training_terms
from ..errors import NetwrightError, SpecError
from ..models import MODELS, build_model, count_parameters
from ..models.cost import forward_cost, forward_flops
from ..run import Run
from ..spec import Spec, SpecSource, TrainSpec, check_augment, load_spec
from ..tasks import (AdversarialTask, ContrastiveTask, ControlTask, DetectionTask, Judge, LanguageModelTask,
                     Seq2SeqTask, SupervisedTask)
from ..tasks.adversarial import judge_spec
from ..text.generate import save_tokenizer
from .distributed import Dist, from_env, init, shutdown
from .progress import Mode, TrainingProgress
from .trainer import Trainer
from .transfer import freeze, init_from


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when visible, else CPU; ``cuda`` without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise NetwrightError("train.device: cuda was asked for but no CUDA device is visible; use auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# benchmarks/threads.py on a shared 2-core machine: a second thread pays off once a model
# does ~100k multiply-accumulates per example and each sequential step does ~50k of them
# (a CNN on digits: 1.3x; an MLP on digits or a 64-unit GRU over 40 steps: no gain).
PARALLEL_MACS, PARALLEL_MACS_PER_STEP = 100_000, 50_000


def resolve_threads(threads: int | str, model: torch.nn.Module, example: torch.Tensor, share: int = 1) -> int:
    """``auto``: one thread for small or step-by-step models, otherwise every core (at most 8),
    divided among the ``share`` processes of a distributed job on this machine."""
    from ..models.gan import GAN

    if threads != "auto":
        return int(threads)
    macs, steps = forward_cost(model.discriminator if isinstance(model, GAN) else model, example)
    if macs < PARALLEL_MACS or macs / steps < PARALLEL_MACS_PER_STEP:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores // share, 8))


# benchmarks/precision.py (training steps, fp32 against bf16 autocast, 2 threads of an Intel Xeon
# with AMX and AVX512-BF16, quiet machine, medians of 5): bf16 gained 1.38x at 384M
# multiply-accumulates a step (a [64,128] CNN on digits) and 2.22x at 2.4G (the Fashion-MNIST
# CNN at batch 128); at 22-76M it gained 0.5-1.17x (the digits MLP and CNN, the transformer, a
# wide MLP) and the GRU's small sequential steps lost (0.78x). One exception below the line: the
# 1-D CNN on MNIST-1D gained 1.31x at 21M; the rule keeps it in fp32, which costs it that gain.
BF16_MACS_PER_STEP = 200_000_000
AUTOCAST_KINDS = (None, "language_model", "translation")  # the tasks whose steps run under autocast


def resolve_precision(train_spec: TrainSpec, device: torch.device, model: torch.nn.Module, example: torch.Tensor,
                      kind: str | None) -> tuple[bool, str]:
    """(bf16 autocast?, why) for ``train.precision`` on this device and model.

    ``auto``: bf16 on CUDA; on a CPU, bf16 when it runs natively (AVX512-BF16 or AMX) and a
    training step is large enough to pay for the conversions, fp32 otherwise.
    """
    from ..hardware import native_bf16

    if train_spec.precision != "auto":
        return train_spec.precision == "bf16", f"train.precision: {train_spec.precision}"
    if kind not in AUTOCAST_KINDS:
        return False, "fp32: this kind of model trains in full precision"
    if device.type == "cuda":
        return True, "bf16: auto on CUDA"
    if not native_bf16():
        return False, "fp32: this CPU has no native bf16 (AVX512-BF16 or AMX)"
    macs, steps = forward_cost(model, example)
    per_step = macs * train_spec.batch_size
    if per_step / steps < BF16_MACS_PER_STEP:
        return False, (f"fp32: {per_step / steps / 1e6:,.0f}M multiply-accumulates a step"
                       f"{' (sequential step)' if steps > 1 else ''} is below the "
                       f"{BF16_MACS_PER_STEP / 1e6:,.0f}M where bf16 pays on this CPU")
    return True, (f"bf16: native on this CPU and {per_step / 1e6:,.0f}M multiply-accumulates a step "
                  f">= {BF16_MACS_PER_STEP / 1e6:,.0f}M")


def resolve_channels_last(train_spec: TrainSpec, model: torch.nn.Module) -> bool:
    """Channels-last memory format: ``auto`` uses it for every 2-D convolutional model
    (benchmarks/speedups.py: the digits CNN 1.16x faster at the same accuracy)."""
    conv2d = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    return conv2d and train_spec.channels_last in ("auto", True)


def train(spec: SpecSource | None = None, overrides: list[str] | None = None, name: str | None = None,
          runs_dir: str | os.PathLike | None = None, resume: bool = False, overwrite: bool = False,
          progress: Mode = "auto", callbacks: list[Any] | None = None, model: torch.nn.Module | None = None,
          data: Any = None) -> Run:
    """Train a network as ``spec`` declares and write a run directory.

    Args:
        spec: a YAML path, a dict or a :class:`Spec`; with ``resume=True``, a run directory.
        overrides: ``a.b=c`` strings applied on top of the spec.
        name: run name (default: the spec's ``name``, else the YAML file's stem, else the dataset
            and model); an explicit name that exists is an error, a derived one gets a suffix.
        runs_dir: parent folder of runs (default ``./runs`` or ``NETWRIGHT_RUNS``).
        resume: continue the run directory ``spec`` from its last checkpoint.
        overwrite: replace an existing run of the same name.
        progress: ``auto`` (bar on a terminal, lines otherwise), ``bar``, ``lines`` or ``quiet``.
        callbacks: :class:`netwright.training.callbacks.Callback` instances, run after the
            spec's ``train.callbacks``.
        model: an ``nn.Module`` to train in place of the spec's ``model:`` section. One built by a
            registered builder (``build_model``) is recorded by name and arguments; any other is
            recorded as ``model.name: object``, and the run then stores its weights only (the
            verbs that rebuild it work in this Python process).
        data: a ``torch.utils.data.Dataset`` (map-style or iterable) of (input, target) pairs in
            place of the spec's data set; saved once under ``RUNS/.datasets/`` so that every verb
            reads the same examples (the spec's ``data.val``, ``test``, ``split_seed`` still apply).

    Returns:
        The :class:`Run`; ``run.read_json("train.json")`` holds the summary.
    """
    if model is not None or data is not None:
        if resume:
            raise NetwrightError("--resume continues a run as it was specified; pass model= and data= to a new run")
        spec = with_objects(spec, model, data, runs_dir)
    elif spec is None:
        raise NetwrightError("netwright.train: give a spec (a YAML path or a dict), or model= and data=")
    with contextlib.ExitStack() as scope:  # the run's lock and transaction, once the run is known
        return _train(scope, spec, overrides, name, runs_dir, resume, overwrite, progress, callbacks, model)


def with_objects(spec: SpecSource | None, model: torch.nn.Module | None, data: Any,
                 runs_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The spec as a dict with ``model=`` and ``data=`` objects in place of its sections."""
    from ..run import default_runs_dir
    from ..spec import raw_spec

    raw: dict[str, Any] = {} if spec is None else raw_spec(spec)
    if isinstance(spec, (str, os.PathLike)):  # its plugin files and name, as the file would give them
        raw["plugins"] = [str(Path(spec).parent / p) if str(p).endswith(".py") else p for p in raw.get("plugins", [])]
        raw.setdefault("name", Path(spec).stem)
    if data is not None:
        from ..data.torch_data import save_dataset

        split = {k: v for k, v in (raw.get("data") or {}).items() if k in ("val", "test", "split_seed", "normalize")}
        raw["data"] = {**save_dataset(data, runs_dir if runs_dir is not None else default_runs_dir()), **split}
    if model is not None:
        if not isinstance(model, torch.nn.Module):
            raise NetwrightError(f"netwright.train(model=...): a {type(model).__name__} is not a torch.nn.Module")
        from ..models.objects import as_spec

        raw["model"] = as_spec(model)
    for section in ("data", "model"):
        if section not in raw:
            raise NetwrightError(f"netwright.train: no {section}: give it in the spec or as {section}=")
    return raw


def _train(scope: contextlib.ExitStack, spec: SpecSource, overrides: list[str] | None, name: str | None,
           runs_dir: str | os.PathLike | None, resume: bool, overwrite: bool, progress: Mode,
           callbacks: list[Any] | None = None, given: torch.nn.Module | None = None) -> Run:
    if resume:
        if overrides:
            raise NetwrightError("--resume continues a run exactly as it was specified; "
                                 "start a new run to change the spec")
        run = Run.open(spec)
        if from_env().main:  # one lock for a distributed job: rank 0 writes the run
            scope.enter_context(run.transaction("netwright train --resume"))
        resolved = run.spec
    else:
        resolved = load_spec(spec, overrides)
    data = run.load_data() if resume else load_dataset(resolved.data)
    info = data.info
    problems = check_augment(resolved.train.augment, info.modality, resolved.data.name)
    if problems:
        raise SpecError(problems)
    check_groups(data, resolved.fairness)
    from .callbacks import build_callbacks

    from .tracking import tracking_callbacks  # train.log: TensorBoard / MLflow, written by rank 0 only

    hooks = build_callbacks(resolved.train.callbacks) + list(callbacks or []) \
        + (tracking_callbacks(resolved) if from_env().main else [])
    from ..calibrate import check_calibrate_spec  # train.calibrate: a classifier with a validation split

    check_calibrate_spec(resolved, info)
    if info.task in ("language_model", "translation", "control", "detection") \
            and MODELS.get(resolved.model.name).meta.get("task") != info.task:
        preset = {"language_model": "transformer_lm", "translation": "transformer_seq2seq", "control": "policy",
                  "detection": "detector"}[info.task]
        raise NetwrightError(f"model.name: {resolved.model.name} does not do {info.task.replace('_', ' ')}; "
                             f"'{info.name}' needs model.name: {preset}")
    fairness_term, extras = training_terms(resolved, data)
    if resolved.continual is not None:  # checked before a run directory is written or replaced
        from .continual import check_continual

        if resume or from_env().active or MODELS.get(resolved.model.name).meta.get("task") is not None:
            raise NetwrightError("continual learning runs in one process, from the start, for a classifier; "
                                 "drop --resume / --nproc, or the continual: section")
        check_continual(resolved, data)

    dist = from_env()
    device = resolve_device(resolved.train.device)
    if dist.active:
        if device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(device)
        if MODELS.get(resolved.model.name).meta.get("task") == "adversarial":
            raise NetwrightError("distributed training covers supervised models; train a GAN in one process")
        init(dist, device, resolved.train.dist_timeout)
        if not dist.main:
            progress = "quiet"
    torch.manual_seed(resolved.seed)
    model = given if given is not None else build_model(resolved.model.name, info, **resolved.model.params)
    if given is not None:  # an object from Python: it must take this data's inputs
        try:
            with torch.no_grad():
                given.eval()(data.train.x[:2])
            given.train()
        except Exception as e:
            raise NetwrightError(f"netwright.train(model=...): {type(given).__name__} cannot take this data's inputs "
                                 f"of shape {tuple(data.train.x.shape[1:])}: {type(e).__name__}: {e}") from None
    notes = [line] if (line := describe_missing(info.preprocess)) else []
    if resolved.model.name == "object":
        from ..models.objects import ONLY_WEIGHTS

        notes.append(ONLY_WEIGHTS.replace("the model was", "an"))
    if resolved.train.init_from and not resume:
        copied, total = init_from(model, resolved.train.init_from)
        notes.append(f"{copied} of {total} tensors from {resolved.train.init_from}")
    frozen = freeze(model, resolved.train.freeze)
    if frozen:
        notes.append(f"frozen: {', '.join(resolved.train.freeze)}")
    threads = resolve_threads(resolved.train.threads, model, data.train.x, share=dist.local_world)
    torch.set_num_threads(threads)
    kind = MODELS.get(resolved.model.name).meta.get("task")
    bf16, precision_reason = resolve_precision(resolved.train, device, model, data.train.x, kind)
    channels_last = resolve_channels_last(resolved.train, model)
    model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)
    if resolved.train.compile:
        model.compile()  # compiles forward in place; parameter names (and checkpoints) are unchanged

    if not resume:
        explicit = name is not None or resolved.name is not None
        run_name = name or resolved.name or _default_name(spec, resolved)
        if dist.main:  # only rank 0 writes the run directory; the others learn where it is
            run = Run.create(run_name, runs_dir, overwrite=overwrite, explicit=explicit)
            scope.enter_context(run.transaction("netwright train"))
            run.write_spec(resolved.model_copy(update={"name": run.name}))
            if resolved.plugins:
                from ..plugins import describe

                run.write_json("plugins.json", describe(resolved.plugins))
            run.write_json("data.json", info.to_dict())
            save_tokenizer(run)
            share_path(run.path, dist)
        else:
            run = Run(share_path(None, dist))

    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else None
    if kind == "adversarial":
        task: Any = AdversarialTask(info, resolved.train, judge_for(run, resolved, info, resume, progress))
    elif kind == "language_model":
        task = LanguageModelTask(info, resolved.train, autocast=autocast)
    elif kind == "translation":
        task = Seq2SeqTask(info, resolved.train, autocast=autocast)
    elif kind == "control":
        task = ControlTask(info, resolved.train)
    elif kind == "contrastive":
        task = ContrastiveTask(info, resolved.train)
    elif kind == "detection":
        task = DetectionTask(info, resolved.train)
    else:
        task = SupervisedTask(info, resolved.train, autocast=autocast, fairness=fairness_term)

    if resolved.continual is not None:
        from .continual import train_continual

        with TrainingProgress(progress) as prog:
            prog.message(f"{resolved.model.name} on {info.name}: {count_parameters(model):,} parameters, "
                         f"continual learning ({resolved.continual.method}) -> {run.home}")
            result = train_continual(model, data, resolved, device, prog, lambda t, part: Trainer(
                model, t, part, resolved, run, device, prog, channels_last=channels_last,
                precision="bf16" if bf16 else "fp32", precision_reason=precision_reason, frozen=frozen))
        run.write_json("continual.json", result)
        return run

    # forward FLOPs of one example for the compute report (a GAN's two networks are not one forward)
    flops = forward_flops(model, data.train.x[:1].to(device)) if kind != "adversarial" else None
    with TrainingProgress(progress) as prog:
        trainer = Trainer(model, task, data, resolved, run, device, prog, channels_last=channels_last,
                          precision="bf16" if bf16 else "fp32", precision_reason=precision_reason, extras=extras,
                          dist=dist, frozen=frozen, flops_per_example=flops, callbacks=hooks)
        if resume:
            trainer.resume()
        else:
            prog.message(f"{resolved.model.name} on {info.name}: {count_parameters(model):,} parameters, "
                         f"{info.splits['train']}/{info.splits['val']}/{info.splits['test']} train/val/test, "
                         f"{device}{' bf16' if bf16 else ''}{' channels-last' if channels_last else ''}"
                         f"{' compiled' if resolved.train.compile else ''}, {threads} thread{'s' * (threads > 1)}"
                         f"{f' x {dist.world} processes' if dist.active else ''}"
                         f"{''.join(f'; {n}' for n in notes)} -> {run.home}")
            prog.message(f"precision {precision_reason}")
        trainer.fit()
    shutdown(dist)
    if resolved.fairness.mitigation == "thresholds" and dist.main:
        from ..fairness.mitigate import save_thresholds

        save_thresholds(run, data, model.cpu().eval())
    if resolved.train.calibrate and dist.main:  # a temperature fitted on the validation split
        from ..calibrate import calibrate

        calibrate(run, model=model.cpu().eval(), data=data)
    return run


def share_path(path: Path | None, dist: Dist) -> Path:
    """Rank 0's run directory, told to every rank."""
    if not dist.active:
        return path
    import torch.distributed as torch_dist

    box = [str(path) if path is not None else None]
    torch_dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def judge_for(run: Run, spec: Spec, info: Any, resume: bool, progress: Mode) -> Judge:
    """The classifier that scores a GAN's samples: trained into ``RUN/judge/`` (reused on resume)."""
    folder = run.file("judge")
    if not (resume and (folder / "model.safetensors").is_file()):
        with TrainingProgress(progress) as prog:
            prog.message(f"training the judge classifier for the GAN's samples -> {folder}")
        train(judge_spec(spec, info.modality), name="judge", runs_dir=run.path, overwrite=True, progress="quiet")
    return Judge(Run.open(folder).load_model())


def _default_name(source: SpecSource, spec: Spec) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).stem
    return f"{spec.data.name}-{spec.model.name}"
