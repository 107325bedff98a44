"""A real ``torchrun --nproc_per_node 2`` (gloo, CPU) run equals one process with the same global batch."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from handlib.recipe import Recipe
from handlib.train import TrainOptions, fit

TESTS_DIR = Path(__file__).resolve().parent
RECIPE = Recipe(optimizer="adam", lr=1e-2, epochs=2, batch_size=8, schedule="exponential", gamma=0.9,
                weight_decay=1e-4)

WORKER = textwrap.dedent(f"""
    import sys, torch
    sys.path.insert(0, {str(TESTS_DIR)!r})
    from test_train import TinyDataset, make_model, tiny_loss, tiny_predict
    from test_train_ddp import RECIPE
    from handlib import distributed
    from handlib.train import TrainOptions, fit

    ctx = distributed.init_from_env("cpu")
    model = make_model(regularised=False)
    result = fit(model, tiny_loss, tiny_predict, TinyDataset(44), TinyDataset(15, seed=1), RECIPE,
                 TrainOptions(seed=3, device="cpu", progress=False, checkpoint_dir=sys.argv[1],
                              meta={{"model": "tiny"}}))
    if ctx.is_main:
        torch.save({{"model": model.state_dict(), "history": result.history}}, sys.argv[1] + "/final.pt")
    distributed.shutdown()
""")


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_torchrun_two_processes_match_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "ddp"
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS_DIR)}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(out / "final.pt", weights_only=True)

    sys.path.insert(0, str(TESTS_DIR))
    from test_train import TinyDataset, make_model, tiny_loss, tiny_predict
    model = make_model(regularised=False)
    single = fit(model, tiny_loss, tiny_predict, TinyDataset(44), TinyDataset(15, seed=1), RECIPE,
                 TrainOptions(seed=3, device="cpu", progress=False))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ddp["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    for ddp_epoch, one_epoch in zip(ddp["history"], single.history, strict=True):
        assert ddp_epoch["train"]["total"] == pytest.approx(one_epoch["train"]["total"], rel=1e-5)
        # validation is sharded over the two processes (8 + 7 frames) and summed: same mean
        assert ddp_epoch["val"]["mean_error_mm"] == pytest.approx(one_epoch["val"]["mean_error_mm"], rel=1e-5)
    # rank 0 alone wrote the checkpoints, with both processes' RNG states
    saved = torch.load(out / "last.pt", weights_only=True)
    assert len(saved["rng"]) == 2 and saved["meta"]["world_size"] == 2
