import pytest
import torch


@pytest.fixture
def one_torch_thread():
    # Tiny nets on a shared CPU: more threads only add contention.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
