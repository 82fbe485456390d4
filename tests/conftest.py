import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Unit tests use tiny tensors and models: one thread is as fast, and avoids OpenMP spin-waits
    that slow two-thread PyTorch down many times over when another job shares the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
