import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    # The machine is shared; tiny models run faster on one thread than fighting for two.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
