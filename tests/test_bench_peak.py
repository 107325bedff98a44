"""The roofline's denominator: the best of a matmul and 3x3 / 1x1 convolutions, measured in the same
run. No registered model may run above it (a fraction over 1 means the reference is wrong)."""
from __future__ import annotations

import pytest
import torch

from handlib import infer_cli
from handlib.models import bench
from handlib.models.registry import MODEL_NAMES

CPU = torch.device("cpu")


def test_peak_reports_every_kernel_and_the_best():
    kernels = bench.peak_kernels(CPU, small=True)
    assert set(kernels) == set(bench.PEAK_KERNELS)
    seconds = {"matmul": [2.0, 1.0], "conv3x3": [1.0], "conv1x1": [10.0]}
    peak = bench.peak_from_timings(kernels, seconds)
    flops = {name: f for name, (_, f) in kernels.items()}
    assert peak["kernel_flops_per_s"]["matmul"] == flops["matmul"]        # best of its calls
    assert peak["peak_kernel"] == max(flops, key=lambda n: flops[n] / min(seconds[n]))
    merged = bench.merge_peaks(peak, {**peak, "kernel_flops_per_s": {**peak["kernel_flops_per_s"], "conv1x1": 1e18}})
    assert merged["peak_kernel"] == "conv1x1" and merged["peak_flops_per_s"] == 1e18


def test_conv_kernels_count_their_flops():
    kernels = bench.peak_kernels(CPU, small=True)
    _, flops = kernels["conv3x3"]
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        kernels["conv3x3"][0]()
    assert counter.get_total_flops() == flops


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_no_model_runs_above_the_peak(model):
    """Inference at batch 1 and 4 and training at the smoke size, each against the peak of its run
    (full-size kernels: a small kernel would understate the peak and hide the problem)."""
    result = bench.benchmark_inference(model, batch_sizes=(1, 4), repeats=1, device=CPU, profile="smoke")
    for batch in (1, 4):
        assert result[f"roofline_fraction_b{batch}"] <= 1.05, (model, batch, result)
    assert result["peak_kernel"] in bench.PEAK_KERNELS

    from handlib.train_cli import bench_train

    figures = bench_train(model, profile="smoke", steps=2, batch_size=4)
    assert 0 < figures["roofline_fraction"] <= 1.05, (model, figures)
    assert set(figures["kernel_flops_per_s"]) == set(bench.PEAK_KERNELS)


def test_operators_fall_into_their_groups():
    from handlib.step_profile import op_group

    assert op_group("aten::mkldnn_convolution") == op_group("aten::convolution_backward") == "convolutions"
    assert op_group("aten::addmm") == op_group("aten::mm") == "matmul, linear, LSTM"
    assert op_group("aten::native_batch_norm_backward") == "norms"
    assert op_group("aten::_to_copy") == op_group("aten::copy_") == "casts and copies"
    assert op_group("aten::threshold_backward") == "element-wise and other"


def test_group_times_follow_the_region_an_operator_ran_in():
    from types import SimpleNamespace as Event

    from handlib import step_profile as sp

    step = Event(name=sp.STEP, cpu_parent=None, self_cpu_time_total=0)
    opt = Event(name=sp.OPTIMISER, cpu_parent=None, self_cpu_time_total=0)
    events = [step, opt,
              Event(name="aten::mkldnn_convolution", cpu_parent=step, self_cpu_time_total=3e6),
              Event(name="aten::mul", cpu_parent=opt, self_cpu_time_total=1e6),      # Adam's arithmetic
              Event(name="aten::add", cpu_parent=None, self_cpu_time_total=9e6)]     # outside any step
    seconds = sp.group_times(events)
    assert seconds["convolutions"] == 3.0 and seconds["optimiser step"] == 1.0
    assert seconds["element-wise and other"] == 0.0 and list(seconds) == list(sp.GROUPS)


def test_profile_ops_shares_sum_to_one():
    from handlib.step_profile import profile_training_step

    found = profile_training_step("crossinfonet", profile="smoke", steps=1, batch_size=2)
    assert abs(sum(found["groups"].values()) - 1) < 1e-9 and found["groups"]["convolutions"] > 0
    assert found["top_ops"] and found["step_ms"] > 0


@pytest.fixture(scope="module")
def smoke_weights(tmp_path_factory):
    """A CrossInfoNet trained for the smoke profile's few steps: weights to check inference graphs with."""
    from handlib.runs import train_and_record

    out = tmp_path_factory.mktemp("cin-smoke")
    train_and_record("crossinfonet", variant="cross_hm", profile="smoke", seed=0, out=out / "run",
                     write_results=False, progress=False, runs_root=out)
    return out / "run" / "best.pt"


def test_the_timed_graph_scores_like_the_trained_network_in_fp32_and_close_in_bf16(smoke_weights):
    fp32 = infer_cli.timed_graph_error("crossinfonet", "cross_hm", smoke_weights, profile="smoke", precision="fp32")
    assert fp32["test_frames"] == 32 and fp32["accuracy_batch_size"] == 1
    assert abs(fp32["accuracy_cost_mm"]) < 1e-3                 # BatchNorm folded, channels-last: same network
    bf16 = infer_cli.timed_graph_error("crossinfonet", "cross_hm", smoke_weights, profile="smoke", precision="bf16")
    assert bf16["trained_test_mean_error_mm"] == fp32["trained_test_mean_error_mm"]
    assert 0 < abs(bf16["accuracy_cost_mm"]) < 0.02 * bf16["trained_test_mean_error_mm"]   # rounding, not a bug


def test_bench_infer_in_bf16_times_bf16_against_the_bf16_peak(capsys):
    result = bench.benchmark_inference("crossinfonet", batch_sizes=(1,), repeats=1, device=CPU, profile="smoke",
                                       precision="bf16", small_peak=True)
    assert result["precision"] == "bf16" and result["roofline_fraction_b1"] > 0
    kernels = bench.peak_kernels(CPU, torch.bfloat16, small=True)
    _, flops = kernels["conv1x1"]
    assert flops == 2 * 8 * 32 * 32 * 128 * 128                  # the same kernels, now in bf16
    from handlib.cli import main

    assert main(["bench", "infer", "crossinfonet", "--weights", "/nonexistent/best.pt", "--repeats", "1"]) == 2
    assert "--weights /nonexistent/best.pt: no such file" in capsys.readouterr().err
