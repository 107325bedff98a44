"""Where one training step's time goes: ``python -m handlib bench train MODEL --profile-ops``.

A few real training steps of a registered model (its loss, its optimiser, the profile's batch) run
under ``torch.profiler``; every operator's *self* time is put into one group (:data:`GROUPS`:
convolutions, matmuls / linear / recurrent layers, norms, element-wise, casts and copies, the
optimiser step, waiting for data), so a reader sees at a glance what a faster kernel, a fused
optimiser or bf16 could buy. The first step is warm-up and is not profiled.
"""
from __future__ import annotations

import time
from collections import defaultdict

# Group of an operator, by the first rule its name matches (lower-cased); the rest is element-wise.
GROUP_RULES = (
    ("casts and copies", ("aten::to", "aten::_to_copy", "aten::copy_", "aten::contiguous", "aten::clone",
                          "aten::_copy_from", "aten::empty_like")),
    ("convolutions", ("conv",)),
    ("matmul, linear, LSTM", ("addmm", "aten::mm", "aten::bmm", "matmul", "linear", "lstm", "rnn", "baddbmm")),
    ("norms", ("batch_norm", "layer_norm", "group_norm", "instance_norm")),
)
GROUPS = ("convolutions", "matmul, linear, LSTM", "norms", "element-wise and other", "casts and copies",
          "optimiser step", "data")
DATA, STEP, OPTIMISER = "handlib::data", "handlib::forward_backward", "handlib::optimiser_step"


def op_group(name: str) -> str:
    lowered = name.lower()
    for group, keys in GROUP_RULES:
        if any(key in lowered for key in keys):
            return group
    return "element-wise and other"


def _region(event) -> str | None:
    """The handlib region (data / forward-backward / optimiser) an operator ran in, or None."""
    node = event
    while node is not None:
        if node.name in (DATA, STEP, OPTIMISER):
            return node.name
        node = node.cpu_parent
    return None


def group_times(events) -> dict[str, float]:
    """Seconds of self CPU time per group from a profiler's function events: operators inside the
    optimiser region count as "optimiser step", inside the data region as "data", the rest by name."""
    seconds: dict[str, float] = defaultdict(float)
    for event in events:
        if event.name in (DATA, STEP, OPTIMISER):
            continue
        region = _region(event)
        if region is None:
            continue
        group = {DATA: "data", OPTIMISER: "optimiser step"}.get(region) or op_group(event.name)
        seconds[group] += event.self_cpu_time_total / 1e6
    return {group: seconds.get(group, 0.0) for group in GROUPS}


def profile_training_step(model: str, *, variant=None, dataset="synthetic", profile="book", convention=None,
                          data_root="", amp="auto", channels_last=True, steps=3, batch_size=None,
                          fused_optimizer: bool | None = None, top: int = 12) -> dict:
    """Profile ``steps`` training steps (after one warm-up step) on the CPU; returns the step's wall
    time, each group's share of the profiled self time (``groups``, fractions summing to 1) and the
    ``top`` operators by self time."""
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile, record_function
    from torch.utils.data import DataLoader

    from handlib.errors import UsageError
    from handlib.runs import short_run
    from handlib.train import _to_device as to_device, build_optimizer, resolve_amp

    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    # one warm-up step before the profiled ones
    spec, variant, prof, recipe, convention, splits = short_run(
        model, variant, dataset, profile, convention, data_root, steps=steps + 1, epochs=1,
        batch_size=batch_size, fused_optimizer=fused_optimizer)
    torch.manual_seed(0)
    net = spec.build_for(variant, convention, prof).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(net, recipe)
    device = torch.device("cpu")
    dtype = resolve_amp(amp, device, recipe.precision)
    batches = iter(DataLoader(splits["train"], batch_size=recipe.batch_size, shuffle=False, drop_last=True))

    def step():
        with record_function(DATA):
            batch = to_device(next(batches), device, channels_last)
        with record_function(STEP):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                loss = spec.loss(spec.forward(net, batch), batch)["total"]
            loss.backward()
        with record_function(OPTIMISER):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    step()                                   # warm-up: oneDNN primitives, allocator
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof_run:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - start) / steps
    events = prof_run.events()
    seconds = group_times(events)
    total = sum(seconds.values()) or 1.0
    ops: dict[str, float] = defaultdict(float)
    for event in events:
        if event.name not in (DATA, STEP, OPTIMISER) and _region(event):
            ops[event.name] += event.self_cpu_time_total / 1e6
    ranked = sorted(ops.items(), key=lambda kv: -kv[1])[:top]
    return {"model": model, "variant": variant, "profile": profile, "batch_size": recipe.batch_size,
            "precision": str(dtype or "float32").removeprefix("torch."), "channels_last": channels_last,
            "fused_optimizer": recipe.fused_optimizer,
            "threads": torch.get_num_threads(), "steps": steps, "step_ms": 1000 * wall,
            "groups": {group: s / total for group, s in seconds.items()},
            "top_ops": [{"op": name, "ms_per_step": 1000 * s / steps, "share": s / total} for name, s in ranked]}
