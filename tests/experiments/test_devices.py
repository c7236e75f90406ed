import pytest
import torch

from lipschitz_lr_experiments.devices import AMP_MODES, autocast, describe_device, resolve_device


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


def test_resolve_device_checks_what_it_is_given():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_autocast_modes():
    assert AMP_MODES == ("off", "bf16", "fp16")
    x = torch.randn(4, 4)
    with autocast(torch.device("cpu"), "off"):
        assert (x @ x).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown amp 'fp8'; expected one of off, bf16, fp16"):
        autocast(torch.device("cpu"), "fp8")
