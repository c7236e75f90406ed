import os

import pytest
import torch

from lipschitz_lr_experiments.devices import AMP_MODES, DEVICE_ENV, autocast, describe_device, resolve_device


@pytest.mark.parametrize("threads", [1, 2])
def test_describe_device_names_the_cpu_and_its_thread_count(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        description = describe_device(torch.device("cpu"))
    finally:
        torch.set_num_threads(before)
    assert description.startswith("cpu: ")
    assert description.endswith(f"({threads} thread)" if threads == 1 else f"({threads} threads)")


def test_resolve_device_checks_what_it_is_given(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="unknown device 'meta'"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 0)  # as a tensor on it names its device
    with pytest.raises(ValueError, match=r"device 'cuda:2', but this machine has 2 CUDA device\(s\): cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_auto_is_the_environments_device_and_the_suite_runs_on_the_cpu(monkeypatch):
    """The test suite sets LIPSCHITZ_LR_DEVICE=cpu (tests/conftest.py), so no test silently runs on a GPU."""
    assert os.environ[DEVICE_ENV] == "cpu" and resolve_device("auto") == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, "auto")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    with pytest.raises(
        ValueError, match=r"unknown device 'tpu' \(from \$LIPSCHITZ_LR_DEVICE, which --device auto reads\)"
    ):
        resolve_device("auto")
    if not torch.cuda.is_available():
        monkeypatch.setenv(DEVICE_ENV, "cuda")
        with pytest.raises(ValueError, match=r"device 'cuda' \(from \$LIPSCHITZ_LR_DEVICE.*CUDA is not available"):
            resolve_device("auto")


def test_autocast_modes():
    assert AMP_MODES == ("off", "bf16", "fp16")
    x = torch.randn(4, 4)
    with autocast(torch.device("cpu"), "off"):
        assert (x @ x).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown amp 'fp8'; expected one of off, bf16, fp16"):
        autocast(torch.device("cpu"), "fp8")
