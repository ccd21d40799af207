import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # the tiny models gain nothing from threads, and on a shared CPU spinning threads hurt
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
