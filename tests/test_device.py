import pytest
import torch

from handlib.device import describe_device, pick_device, seed_everything


def test_pick_device_prefers_available_accelerators():
    device = pick_device()
    if torch.cuda.is_available():
        assert device.type == "cuda"
    else:
        assert device.type in ("mps", "cpu")
    assert describe_device(pick_device("cpu")).startswith("CPU")


def test_pick_device_rejects_unavailable_request(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device("cuda")


def test_seed_everything_repeats_random_streams():
    seed_everything(3)
    first = torch.randn(5)
    seed_everything(3)
    assert torch.equal(first, torch.randn(5))
