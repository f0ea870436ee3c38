"""The ``train`` stage: spec -> data -> model -> trainer -> run directory."""

from __future__ import annotations

import contextlib

import os
from pathlib import Path
from typing import Any

import torch

from ..data import load_dataset
from ..data.missing import describe as describe_missing
from ..errors import NetwrightError, SpecError
from ..fairness.mitigation import check_groups, training_terms
from ..models import build_model, count_parameters
from ..run import CONTINUAL, DATA, PLUGINS, TRAIN, WEIGHTS, Run
from ..spec import Spec, SpecSource, check_augment, load_spec
from ..tasks import task_class
from ..tasks.language import save_tokenizer
from ..training.distributed import Dist, from_env, init, shutdown
from ..training.progress import Mode, TrainingProgress
from ..training.resources import resolve_channels_last, resolve_device, resolve_precision, resolve_threads
from ..training.trainer import Trainer
from ..training.transfer import freeze, init_from


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
            Or a pandas or polars DataFrame: a table read as a CSV would be, the spec's ``data``
            naming its ``target`` (and any other key of the ``csv`` loader), e.g.
            ``train({"data": {"target": "y"}, "model": {"name": "mlp"}}, data=df)``.

    Returns:
        The :class:`Run`; ``run.read_json(TRAIN)`` holds the summary.
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
        from ..data.torch_data import is_frame, save_dataset, save_frame

        where = runs_dir if runs_dir is not None else default_runs_dir()
        if is_frame(data):  # a table: the spec's data keys (target, ...) on the DataFrame as Parquet
            raw["data"] = save_frame(data, where, dict(raw.get("data") or {}))
        else:
            split = {k: v for k, v in (raw.get("data") or {}).items() if k in ("val", "test", "split_seed", "normalize")}
            raw["data"] = {**save_dataset(data, where), **split}
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
    scope.callback(data.close)  # a streamed split's decoding processes end with the run
    info = data.info
    problems = check_augment(resolved.train.augment, info.modality, resolved.data.name, resolved.train.tta)
    if problems:
        raise SpecError(problems)
    check_groups(data, resolved.fairness)
    from ..training.callbacks import build_callbacks
    from ..training.tracking import tracking_callbacks  # train.log: TensorBoard / MLflow, written by rank 0 only

    hooks = build_callbacks(resolved.train.callbacks) + list(callbacks or []) \
        + (tracking_callbacks(resolved) if from_env().main else [])
    from .calibrate import check_calibrate_spec  # train.calibrate: a classifier with a validation split

    check_calibrate_spec(resolved, info)
    kind = task_class(info, resolved.model.name)  # the kind of run, resolved once
    moving = [f"augment.{k}" for k in resolved.train.augment.active() if k in ("shift", "rotate", "flip")]
    moving += [f"tta: {k}" for k in resolved.train.tta]
    if kind.spatial_targets and moving:  # the targets are places in the image: moving it alone misaligns them
        raise SpecError([f"train.{k}: moves the image but not the {kind.plural}' targets in it; remove it"
                         for k in moving])
    fairness_term, extras = training_terms(resolved, data)
    if resolved.continual is not None:  # checked before a run directory is written or replaced
        from ..training.continual import check_continual

        if resume or from_env().active or "continual" not in kind.stages:
            raise NetwrightError("continual learning runs in one process, from the start, for a classifier; "
                                 "drop --resume / --nproc, or the continual: section")
        check_continual(resolved, data)

    dist = from_env()
    device = resolve_device(resolved.train.device)
    if dist.active:
        if device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(device)
        if not kind.distributed:
            raise NetwrightError(f"distributed training does not cover {kind.plural}; train {kind.title} in one "
                                 "process (drop --nproc)")
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
    notes = ([line] if (line := describe_missing(info.preprocess)) else []) + info.preprocess.get("notes", [])
    if resolved.model.name == "object":
        from ..models.objects import ONLY_WEIGHTS

        notes.append(ONLY_WEIGHTS.replace("the model was an", "an"))
    if resolved.train.init_from and not resume:
        copied, total = init_from(model, resolved.train.init_from)
        notes.append(f"{copied} of {total} tensors from {resolved.train.init_from}")
    frozen = freeze(model, resolved.train.freeze)
    if frozen:
        notes.append(f"frozen: {', '.join(resolved.train.freeze)}")
    threads = resolve_threads(resolved.train.threads, kind.cost_module(model), data.train.x, share=dist.local_world)
    torch.set_num_threads(threads)
    bf16, precision_reason = resolve_precision(resolved.train, device, model, data.train.x, kind.mixed_precision)
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

                run.write_json(PLUGINS, describe(resolved.plugins))
            run.write_json(DATA, info.to_dict())
            save_tokenizer(run)
            share_path(run.path, dist)
        else:
            run = Run(share_path(None, dist))

    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else None
    companions = {name: companion(run, name, companion_spec, resume, progress)
                  for name, companion_spec in kind.companions(resolved, info).items()}
    task = kind(info, resolved.train, autocast=autocast, fairness=fairness_term, companions=companions)

    if resolved.continual is not None:
        from ..training.continual import train_continual

        with TrainingProgress(progress) as prog:
            prog.message(f"{resolved.model.name} on {info.name}: {count_parameters(model):,} parameters, "
                         f"continual learning ({resolved.continual.method}) -> {run.home}")
            result = train_continual(model, data, resolved, device, prog, lambda t, part: Trainer(
                model, t, part, resolved, run, device, prog, channels_last=channels_last,
                precision="bf16" if bf16 else "fp32", precision_reason=precision_reason, frozen=frozen))
        run.write_json(CONTINUAL, result)
        return run

    flops = task.training_flops(model, data.train.x[:1].to(device))  # of one example, for the compute report
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
        from ..fairness.postprocess import save_thresholds

        save_thresholds(run, data, model.cpu().eval())
    if resolved.train.calibrate and dist.main:  # a temperature fitted on the validation split
        from .calibrate import calibrate

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


def companion(run: Run, name: str, spec: dict[str, Any], resume: bool, progress: Mode) -> Run:
    """A run the kind needs beside this one (a GAN's judge classifier), trained into ``RUN/<name>/``
    and reused on resume."""
    folder = run.file(name)
    if not (resume and (folder / WEIGHTS).is_file()):
        with TrainingProgress(progress) as prog:
            prog.message(f"training the {name} run this kind needs -> {folder}")
        train(spec, name=name, runs_dir=run.path, overwrite=True, progress="quiet")
    return Run.open(folder)


def _default_name(source: SpecSource, spec: Spec) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).stem
    return f"{spec.data.name}-{spec.model.name}"
