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


def test_cpu_name_names_the_amd_core_generation():
    from handlib.device import cpu_name

    def info(family, model, vendor="AuthenticAMD", name="AMD EPYC"):
        return f"vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {name}\n"

    assert cpu_name(info(25, 17)) == "AMD EPYC (Zen 4, family 25, model 17)"
    assert cpu_name(info(26, 2)) == "AMD EPYC (Zen 5, family 26, model 2)"
    assert cpu_name(info(25, 1)) == "AMD EPYC (Zen 3, family 25, model 1)"
    assert cpu_name(info(6, 143, "GenuineIntel", "Intel(R) Xeon(R) Platinum 8480+")) == "Intel(R) Xeon(R) Platinum 8480+"
