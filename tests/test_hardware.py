"""Using the hardware: the precision ``auto`` picks, the compute report, the cached peak, doctor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import netwright
from netwright import build_model, load_dataset, load_spec
from netwright.hardware import native_bf16, peak_flops
from netwright.models.cost import forward_flops
from netwright.training.resources import BF16_MACS_PER_STEP, resolve_precision
from conftest import tiny_spec


def test_auto_precision_keeps_small_models_in_fp32_and_says_why():
    run = netwright.train(tiny_spec(), name="small", progress="quiet")
    summary = run.read_json("train.json")
    assert summary["precision"] == "fp32" and summary["precision_reason"].startswith("fp32: ")
    assert ("below" in summary["precision_reason"]) == native_bf16()


def test_auto_precision_takes_bf16_for_a_large_step_where_the_cpu_has_it():
    spec = load_spec({"data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [4096, 4096]},
                      "train": {"batch_size": 256}})
    info = load_dataset(spec.data)
    model = build_model("mlp", info.info, hidden=[4096, 4096])
    x = info.train.x
    bf16, why = resolve_precision(spec.train, torch.device("cpu"), model, x, True)
    macs = 64 * 4096 + 4096 * 4096 + 4096 * 10  # per example, by hand
    assert macs * 256 >= BF16_MACS_PER_STEP
    assert bf16 == native_bf16() and why.startswith("bf16: " if bf16 else "fp32: this CPU has no native bf16")
    assert resolve_precision(spec.train, torch.device("cpu"), model, x, False) == (
        False, "fp32: this kind of model trains in full precision")
    fixed = spec.train.model_copy(update={"precision": "fp32"})
    assert resolve_precision(fixed, torch.device("cpu"), model, x, True) == (False, "train.precision: fp32")


def test_train_json_reports_training_flops_against_the_measured_peak():
    run = netwright.train(tiny_spec(epochs=4), name="flops", progress="quiet")
    summary = run.read_json("train.json")
    c = summary["compute"]
    # an MLP [16] on iris: 2 FLOPs per multiply-accumulate, (4*16 + 16*3) of them per example, forward
    assert forward_flops(run.load_model(), run.load_data().train.x) == 2 * (4 * 16 + 16 * 3)
    assert c["flops_per_example"] == 3 * 2 * (4 * 16 + 16 * 3)
    timing = [json.loads(line) for line in run.file("timing.jsonl").read_text().splitlines()]
    rates = sorted(t["samples_per_s"] for t in timing)
    assert c["samples_per_s"] == pytest.approx((rates[1] + rates[2]) / 2)  # the median of 4 epochs
    assert c["flop_per_s"] == pytest.approx(c["flops_per_example"] * c["samples_per_s"], rel=1e-6)
    peak = peak_flops("cpu", "fp32", summary["threads"])
    assert c["peak_flop_per_s"] == round(peak["flop_per_s"]) and c["fraction_of_peak"] == pytest.approx(
        c["flop_per_s"] / peak["flop_per_s"], rel=1e-3)
    assert peak_flops("cpu", "fp32", summary["threads"]) == peak  # cached: measured once


def test_doctor_names_what_a_bug_report_needs(cli):
    result = cli("doctor")
    assert result.code == 0, result.err
    for text in ("torch", "native bf16", "cpu flags", "GFLOP/s", "dataset-fashion-mnist", "mlflow"):
        assert text in result.out


# ------------------------------------------------------------------ native bf16, from the CPU's flags

# /proc/cpuinfo as these CPUs print it (the flags line trimmed to the vector extensions)
ZEN4 = ("model name\t: AMD EPYC 9654 96-Core Processor\n"
        "flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni\n")
AMX_ONLY = ("model name\t: planted AMX part\n"  # AMX without AVX512-BF16: AMX alone must count
            "flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512vl amx_bf16 amx_tile amx_int8\n")
HASWELL = "model name\t: Intel(R) Xeon(R) CPU E5-2680 v3\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
SKYLAKE_X = ("model name\t: Intel(R) Xeon(R) Gold 6140\n"  # AVX-512 without BF16: oneDNN converts, not native
             "flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni\n")


@pytest.fixture
def plant_cpu(tmp_path, monkeypatch):
    """Make the hardware module read ``text`` as this machine's /proc/cpuinfo (oneDNN present)."""
    from netwright import hardware

    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)

    def plant(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(hardware, "CPUINFO", path)

    return plant


@pytest.mark.parametrize("text, native, flags, name", [
    (ZEN4, True, {"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}, "AMD EPYC 9654 96-Core Processor"),
    (AMX_ONLY, True, {"avx2", "avx512f", "amx_bf16", "amx_tile"}, "planted AMX part"),
    (HASWELL, False, {"avx2"}, "Intel(R) Xeon(R) CPU E5-2680 v3"),
    (SKYLAKE_X, False, {"avx2", "avx512f", "avx512_vnni"}, "Intel(R) Xeon(R) Gold 6140"),
], ids=["avx512_bf16", "amx_bf16", "avx2_only", "avx512_without_bf16"])
def test_native_bf16_follows_the_cpus_flags(plant_cpu, text, native, flags, name):
    from netwright.hardware import cpu_flags, cpu_name

    plant_cpu(text)
    assert native_bf16() is native
    assert {f for f, have in cpu_flags().items() if have} == flags and cpu_name() == name


def _train_spec(batch_size: int):
    """The train section of a spec with ``batch_size`` and ``precision: auto``."""
    return load_spec({"data": {"name": "digits"}, "model": {"name": "mlp"},
                      "train": {"batch_size": batch_size}}).train


def _one_linear() -> tuple[torch.nn.Module, torch.Tensor]:
    """1000 x 1000 weights, no bias: 1,000,000 multiply-accumulates per example, by hand."""
    return torch.nn.Sequential(torch.nn.Linear(1000, 1000, bias=False)), torch.zeros(4, 1000)


def test_auto_precision_follows_the_planted_cpu(plant_cpu):
    model, x = _one_linear()
    spec = _train_spec(1000)  # 1G multiply-accumulates a step: well above the line
    for text, expected in ((ZEN4, True), (AMX_ONLY, True), (HASWELL, False), (SKYLAKE_X, False)):
        plant_cpu(text)
        bf16, why = resolve_precision(spec, torch.device("cpu"), model, x, True)
        assert bf16 is expected, (text, why)
        assert why == ("bf16: native on this CPU and 1,000M multiply-accumulates a step >= 200M" if expected
                       else "fp32: this CPU has no native bf16 (AVX512-BF16 or AMX)")


def test_auto_precision_takes_bf16_from_200m_multiply_accumulates_a_step(plant_cpu):
    # the README: bf16 "when a training step does at least 200M multiply-accumulates"; one weight,
    # one multiply-accumulate per example, so a step's count is its batch size, to the last one
    plant_cpu(ZEN4)
    model, x = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False)), torch.zeros(4, 1)
    assert resolve_precision(_train_spec(199_999_999), torch.device("cpu"), model, x, True) == (
        False, "fp32: 200M multiply-accumulates a step is below the 200M where bf16 pays on this CPU")
    assert resolve_precision(_train_spec(200_000_000), torch.device("cpu"), model, x, True) == (
        True, "bf16: native on this CPU and 200M multiply-accumulates a step >= 200M")
    model, x = _one_linear()  # 1M a example: 199M and 200M, as the reason prints them
    assert resolve_precision(_train_spec(199), torch.device("cpu"), model, x, True) == (
        False, "fp32: 199M multiply-accumulates a step is below the 200M where bf16 pays on this CPU")
    assert resolve_precision(_train_spec(200), torch.device("cpu"), model, x, True)[0] is True


# ------------------------------------------------------------------ a peak that can be trusted


def test_the_peak_is_timed_until_two_rounds_agree():
    from netwright.hardware import PEAK_MAX_ROUNDS, _until_stable

    # rounds of 3 timings: bests 80, 100 (25% apart: go on), 101 (1% from 100: stop)
    planted = iter([50.0, 80.0, 60.0, 100.0, 90.0, 95.0, 101.0, 99.0, 97.0, 5000.0])
    assert _until_stable(lambda: next(planted)) == (101.0, 3, True)
    assert next(planted) == 5000.0  # the ninth timing was the last one taken
    calls = []

    def never_settles() -> float:  # rounds alternate 100 and 200 and never agree
        calls.append(1)
        return 100.0 * (1 + (len(calls) - 1) // 3 % 2)

    assert _until_stable(never_settles) == (200.0, PEAK_MAX_ROUNDS, False) and len(calls) == 3 * PEAK_MAX_ROUNDS
    assert PEAK_MAX_ROUNDS <= 10  # capped: a measurement costs seconds, not minutes


@pytest.fixture
def peak_cache(tmp_path, monkeypatch):
    """The peak cache in a folder of this test's own."""
    from netwright import hardware

    path = tmp_path / "peak-cache" / "peak.json"
    monkeypatch.setattr(hardware, "_cache_file", lambda: path)
    return path


def _planted_measure(flop_per_s: float):
    def measure(device: str, precision: str, threads: int) -> dict:
        return {"flop_per_s": flop_per_s, "size": 2048, "rounds": 2, "repeats": 6, "products_per_repeat": 1,
                "stable": True, "seconds": 0.0, "method": f"planted {flop_per_s:g} FLOP/s"}
    return measure


def _no_measure(device: str, precision: str, threads: int) -> dict:
    raise AssertionError("measured although the cache held a peak above the rate")


def test_a_run_faster_than_the_cached_peak_has_the_peak_measured_again(peak_cache, monkeypatch):
    from netwright import hardware

    real = hardware._measure
    monkeypatch.setattr(hardware, "_measure", _planted_measure(1000.0))  # a peak measured on a busy machine
    peak_flops("cpu", "fp32", 1)
    table = json.loads(peak_cache.read_text())
    (key,) = table
    table[key]["measured_at"] = "2001-02-03T04:05:06+00:00"
    peak_cache.write_text(json.dumps(table))
    monkeypatch.setattr(hardware, "_measure", real)

    run = netwright.train(tiny_spec(), name="fast", progress="quiet")  # MFLOP/s, far above 1000 FLOP/s
    c = run.read_json("train.json")["compute"]
    assert c["flop_per_s"] > 1000 and 0 < c["fraction_of_peak"] <= 1
    entry = json.loads(peak_cache.read_text())[key]
    assert entry["measured_at"] != "2001-02-03T04:05:06+00:00" and c["peak_measured_at"] == entry["measured_at"]
    assert entry["flop_per_s"] > c["flop_per_s"] and c["peak_flop_per_s"] == round(entry["flop_per_s"])
    assert entry["replaces"]["measured_at"] == "2001-02-03T04:05:06+00:00" and entry["replaces"]["flop_per_s"] == 1000
    assert entry["why"].startswith("measured again")
    assert entry["repeats"] >= 6 and "torch.matmul" in entry["method"]  # two rounds of 3 timings at least


def test_a_run_faster_than_any_measurement_is_its_own_peak(peak_cache, monkeypatch):
    from netwright import hardware

    monkeypatch.setattr(hardware, "_measure", _planted_measure(1000.0))  # every measurement: 1000 FLOP/s
    run = netwright.train(tiny_spec(), name="fastest", progress="quiet")
    c = run.read_json("train.json")["compute"]
    assert c["flop_per_s"] > 1000 and c["fraction_of_peak"] == 1 and c["peak_flop_per_s"] == c["flop_per_s"]
    assert "planted 1000 FLOP/s" in c["peak"] and "achieved rate is recorded as the peak" in c["peak"]
    (entry,) = json.loads(peak_cache.read_text()).values()
    assert entry["measured_flop_per_s"] == 1000 and round(entry["flop_per_s"]) == c["flop_per_s"]
    # a slower run later reads the peak from the cache: nothing measured, the fraction below 1
    monkeypatch.setattr(hardware, "_measure", _no_measure)
    assert peak_flops("cpu", "fp32", 1, entry["flop_per_s"] / 4) == entry


def _table_rows(out: str, title: str) -> dict[str, str]:
    """The rows of the doctor's table ``title``: {first cell: second cell}, folded lines joined."""
    rows: dict[str, str] = {}
    label = None
    for line in out[out.index(title):].splitlines()[1:]:
        if line.startswith(("└", "╰")):
            break
        cells = line.split("│")
        if len(cells) < 4:
            continue
        if cells[1].strip():
            label = cells[1].strip()
            rows[label] = cells[2].strip()
        else:
            rows[label] += " " + cells[2].strip()
    return rows


def test_doctor_shows_when_and_how_each_peak_was_measured(cli, peak_cache, monkeypatch):
    from netwright import hardware

    monkeypatch.setattr(hardware, "_measure", _planted_measure(123.4e9))
    assert cli("doctor").code == 0  # measures (the planted rate) and caches both precisions
    table = json.loads(peak_cache.read_text())
    when = {"fp32": "2001-02-03T04:05:06+00:00", "bf16": "2002-03-04T05:06:07+00:00"}
    for entry in table.values():
        entry["measured_at"] = when[entry["precision"]]
    peak_cache.write_text(json.dumps(table))
    monkeypatch.setattr(hardware, "_measure", _no_measure)  # the second doctor reads the cache
    result = cli("doctor")
    assert result.code == 0, result.err
    rows = _table_rows(result.out, "measured matmul peak (cached)")
    threads = min(hardware.cores(), 8)
    assert set(rows) == {f"cpu fp32, {threads} threads", f"cpu bf16, {threads} threads"}, rows
    for precision, at in when.items():
        assert rows[f"cpu {precision}, {threads} threads"] == f"123 GFLOP/s, measured {at}: planted 1.234e+11 FLOP/s"


# ------------------------------------------------------------------ int8 weights on x86 without VNNI


def _matmul_onnx(path) -> None:
    """A one-MatMul ONNX graph (16 -> 8 weights, as a dense layer exports) written with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["output"])], "dense",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 8])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"), reason="x86 only: the VNNI question")
@pytest.mark.parametrize("text, seven_bits", [(HASWELL, True), (SKYLAKE_X, False)], ids=["avx2_no_vnni", "vnni"])
def test_int8_weights_use_7_bits_on_a_cpu_without_vnni(plant_cpu, tmp_path, text, seven_bits):
    """ONNX Runtime's uint8 x int8 products saturate in 16-bit sums without VNNI, so there the
    quantized weights must stay in [-64, 63] (``reduce_range``); with VNNI they use the full
    [-127, 127]. Read from the quantized file's own int8 initializers."""
    import onnx
    from onnx import numpy_helper

    from netwright.compress.quantize import quantize_int8

    plant_cpu(text)
    _matmul_onnx(tmp_path / "fp32.onnx")
    done = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", torch.nn.Linear(16, 8),
                         np.zeros((4, 16), np.float32))
    assert done["method"] == "dynamic" and done["reduce_range"] is seven_bits
    assert ("VNNI" in done.get("why", "")) is seven_bits
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "int8.onnx")).graph.initializer
               if t.data_type == onnx.TensorProto.INT8]
    assert weights, "no int8 weights in the quantized graph"
    largest = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert (largest <= 64) if seven_bits else (largest >= 100), largest
