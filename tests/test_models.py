from __future__ import annotations

import pytest
import torch

from netwright import MODELS, DataInfo, SpecError, build_model, count_parameters
from netwright.errors import NetwrightError
from netwright.models.common import ACTIVATIONS
from netwright.models.cost import forward_cost

INFOS = {
    "image": DataInfo(name="img", task="classification", modality="image", input_shape=(1, 8, 8), num_classes=10,
                      class_names=[str(i) for i in range(10)]),
    "rgb": DataInfo(name="rgb", task="classification", modality="image", input_shape=(3, 12, 10), num_classes=3,
                    class_names=["a", "b", "c"]),
    "sequence": DataInfo(name="seq", task="classification", modality="sequence", input_shape=(2, 40), num_classes=4,
                         class_names=list("abcd")),
    "tabular": DataInfo(name="tab", task="regression", modality="tabular", input_shape=(7,)),
    "tokens": DataInfo(name="txt", task="classification", modality="tokens", input_shape=(12,), num_classes=20,
                       class_names=list("abcdefghijklmnopqrst"), vocab=list("abcdefghijklmnopqrst")),
}


# models for one kind of task or data (the GAN, the language presets, the graph network, the
# recommender, the policy, the contrastive encoder, the detector) have their own contracts in
# test_gan.py, test_language.py and test_applications.py; the object placeholder of
# netwright.train(model=...) in test_python_objects.py
SUPERVISED = [n for n in MODELS.names() if not {"task", "data", "object"} & set(MODELS.get(n).meta)]


def example_batch(info: DataInfo, n: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if info.modality == "tokens":
        return torch.randint(0, len(info.vocab), (n, *info.input_shape), generator=g)
    return torch.randn((n, *info.input_shape), generator=g)


def check_contract(model: torch.nn.Module, info: DataInfo) -> None:
    model.train()
    x = example_batch(info)
    out = model(x)
    assert out.shape == (4, info.num_outputs)
    assert torch.isfinite(out).all()
    (out ** 2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


@pytest.mark.parametrize("modality", list(INFOS))
@pytest.mark.parametrize("name", SUPERVISED)
def test_every_registered_model_trains_on_every_modality(name, modality):
    torch.manual_seed(0)
    info = INFOS[modality]
    model = build_model(name, info)
    assert count_parameters(model) > 0
    check_contract(model, info)
    macs, steps = forward_cost(model, example_batch(info))
    assert macs > 0 and steps >= 1


VARIANTS = [
    ("mlp", {"hidden": []}),  # logistic regression
    ("mlp", {"norm": "batch", "dropout": 0.3}),
    ("mlp", {"norm": "layer"}),
    ("cnn", {"head": "avg", "pool": "avg", "norm": "layer"}),
    ("cnn", {"pool": "none", "norm": "none", "convs_per_block": 2, "kernel_size": 5}),
    ("rnn", {"cell": "lstm", "bidirectional": True, "num_layers": 2, "dropout": 0.1}),
    ("rnn", {"cell": "rnn", "nonlinearity": "relu", "pool": "mean", "hidden": [16]}),
    ("rnn", {"cell": "gru", "pool": "max", "norm": "layer"}),
    ("rnn", {"cell": "gru", "pool": "flatten", "bidirectional": True, "hidden_size": 6}),
    ("transformer", {"pool": "mean", "positional": "sinusoidal", "hidden": [32]}),
    ("transformer", {"d_model": 32, "heads": 2, "layers": 1, "patch_size": 4}),
]


@pytest.mark.parametrize("name,params", VARIANTS, ids=[f"{n}-{'-'.join(p)}" for n, p in VARIANTS])
@pytest.mark.parametrize("modality", ["image", "sequence", "tabular", "tokens"])
def test_model_options(name, params, modality):
    info = INFOS[modality]
    if name == "transformer" and params.get("patch_size") == 4 and modality == "sequence":
        params = {**params, "patch_size": 8}
    torch.manual_seed(0)
    check_contract(build_model(name, info, **params), info)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("name", SUPERVISED)
def test_every_family_takes_every_activation(name, activation):
    info = INFOS["tabular"]
    params = {"activation": activation}
    if name == "rnn":
        params["hidden"] = [8]  # the rnn's activation is in its dense head
    model = build_model(name, info, **params)
    if name == "transformer" and activation in ("relu", "gelu"):  # PyTorch's encoder layer takes these by name
        layers = [m for m in model.modules() if isinstance(m, torch.nn.TransformerEncoderLayer)]
        assert layers and all(m.activation is getattr(torch.nn.functional, activation) for m in layers)
    else:
        assert any(isinstance(m, ACTIVATIONS[activation]) for m in model.modules())
    check_contract(model, info)


def test_bad_hyper_parameters_are_clear():
    with pytest.raises(SpecError, match="model.hiden: unknown key; did you mean 'hidden'"):
        build_model("mlp", INFOS["image"], hiden=[3])
    with pytest.raises(SpecError, match="model.activation"):
        build_model("cnn", INFOS["image"], activation="swish")
    with pytest.raises(SpecError, match="model.dropout"):
        build_model("mlp", INFOS["image"], dropout=1.5)
    with pytest.raises(NetwrightError, match="model.heads: 3 does not divide"):
        build_model("transformer", INFOS["image"], heads=3)
    with pytest.raises(NetwrightError, match="model.patch_size: 3 does not divide the 8x8 image"):
        build_model("transformer", INFOS["image"], patch_size=3)
    with pytest.raises(NetwrightError, match="unknown model 'resnet'"):
        build_model("resnet", INFOS["image"])


# ---------------------------------------------------------------------- every registered model, through its kind

def kind_of(name: str) -> str:
    """The kind a registered model trains in: its own, else the one of the data it needs, else a classifier."""
    meta = MODELS.get(name).meta
    return meta.get("task") or {"graph": "node_classification", "ratings": "recommendation"}.get(meta.get("data"),
                                                                                               "classification")


PLAIN_DATA = {"mlp": {"name": "iris"}, "cnn": {"name": "digits"}, "rnn": {"name": "digits"},
              "transformer": {"name": "digits"}}  # the families that fit any data: one set each here


def kind_example(name: str) -> tuple[dict, DataInfo, tuple[torch.Tensor, ...]]:
    """The kind's tiny example spec with this model (its own size from the example when it is the
    kind's model, the registry's defaults otherwise), its data's facts and a batch of 4."""
    from netwright.data import load_dataset
    from netwright.spec import load_spec
    from netwright.tasks import TASKS

    example = TASKS[kind_of(name)].example()
    if example["model"]["name"] != name:
        example = {**example, "model": {"name": name}, "data": PLAIN_DATA.get(name, example["data"])}
    spec = load_spec(example)
    data = load_dataset(spec.data)
    return example, data.info, (data.train.x[:4], data.train.y[:4])


MODEL_NAMES = [n for n in MODELS.names() if not MODELS.get(n).meta.get("object")]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_registered_model_trains_a_step_of_its_kind_and_exports_where_its_kind_does(name, tmp_path):
    """Forward and backward through the kind's own training step (a GAN's two networks, a policy's
    episodes, a translator's teacher forcing): every parameter gets a finite gradient; where the
    kind exports, the ONNX file gives PyTorch's outputs in ONNX Runtime."""
    import numpy as np

    from netwright.deploy.onnx_io import export_generator, export_onnx, generator_inputs, onnx_session, run_session
    from netwright.spec import load_spec
    from netwright.tasks import TASKS

    example, info, batch = kind_example(name)
    kind = TASKS[kind_of(name)]
    assert kind.name == kind_of(name) and {"evaluate", "report"} <= kind.stages  # every kind is scored and carded
    spec = load_spec(example)
    torch.manual_seed(0)
    model = build_model(name, info, **spec.model.params)
    task = kind(info, spec.train)
    model.train()
    task.train_step(model, batch, task.optimizers(model))
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
    if "export" not in kind.stages:
        return
    model.eval()
    if kind.name == "adversarial":  # the generator is what a GAN exports
        inputs = generator_inputs(model, 4, seed=1)
        session = onnx_session(export_generator(model, tmp_path / "g.onnx"))
        got = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)})[0]
        with torch.no_grad():
            expected = model.generator(*inputs).numpy() if model.conditional else model.generator(inputs[0]).numpy()
    else:
        x, _ = task.export_inputs(batch[0])
        got = run_session(onnx_session(export_onnx(model, info, tmp_path / "m.onnx")), x.numpy())
        with torch.no_grad():
            expected = model(x).numpy()
    assert got.shape == expected.shape and np.abs(got - expected).max() <= 1e-4
