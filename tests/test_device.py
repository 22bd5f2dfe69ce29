"""yolo2retina.device: the device resolver's CPU-thread companion."""

from __future__ import annotations

import pytest
import torch

from yolo2retina.device import torch_threads
from yolo2retina.errors import ConfigError


def test_torch_threads_sets_and_restores_even_on_error() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="boom"), torch_threads(1):
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
        with torch_threads(None):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_torch_threads_refuses_what_is_not_a_thread_count(bad: object) -> None:
    with pytest.raises(ConfigError, match="threads must be"), torch_threads(bad):  # type: ignore[arg-type]
        pass
