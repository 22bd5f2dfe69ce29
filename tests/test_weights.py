"""Tests for yolo2retina.weights: reading state dicts and loading the tensors that fit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from yolo2retina.errors import ConfigError
from yolo2retina.weights import (
    load_state_dict_matching,
    read_state_dict,
    strip_ddp_prefix,
    upgrade_v1_head_keys,
)

KEY = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z0-9_]{1,6}){0,3}", fullmatch=True)


def test_load_state_dict_matching_reports_skips() -> None:
    """Only allowed tensors may be skipped; the result lists loaded and skipped names."""
    a, b = nn.Linear(3, 2), nn.Linear(3, 4)
    with pytest.warns(UserWarning, match="skipped 1"):
        result = load_state_dict_matching(
            a, b.state_dict() | {"weight": a.weight.detach()}, allow_skip=lambda k: k == "bias"
        )
    assert result.loaded == ("weight",)
    assert result.skipped == ("bias: (4,) in weights vs (2,) in model",)
    with pytest.raises(ConfigError, match="bias"):
        load_state_dict_matching(
            a, b.state_dict() | {"weight": a.weight.detach()}, allow_skip=lambda k: False
        )


def test_unknown_and_missing_tensors_are_listed_with_a_count() -> None:
    """Extra and missing tensors are errors; past eight, the message counts the rest."""
    model = nn.Sequential(*(nn.Linear(2, 2) for _ in range(6)))
    extra = {f"extra{i}.weight": torch.zeros(1) for i in range(5)}
    with pytest.raises(ConfigError, match=r"my\.pt: 16 tensor\(s\)") as info:
        load_state_dict_matching(model, {"0.weight": torch.zeros(2, 2)} | extra, source="my.pt")
    message = str(info.value)
    assert "0.bias: missing from the weights" in message
    assert "extra0.weight: not a tensor of this model" not in message  # beyond the first 8
    assert message.endswith("... and 8 more")


def test_num_batches_tracked_may_be_missing_on_either_side() -> None:
    """BatchNorm counters missing from the file or from the model are not errors."""
    bn = nn.BatchNorm2d(3)
    state = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    assert "num_batches_tracked" not in load_state_dict_matching(nn.BatchNorm2d(3), state).loaded
    untracked = nn.BatchNorm2d(3, track_running_stats=False)
    full = nn.BatchNorm2d(3).state_dict()
    kept = {k: full[k] for k in ("weight", "bias", "num_batches_tracked")}
    assert load_state_dict_matching(untracked, kept).loaded == ("weight", "bias")


@given(st.dictionaries(KEY, st.integers(0, 3), max_size=6))
def test_strip_ddp_prefix_undoes_the_wrapper(names: dict[str, int]) -> None:
    """Prefixing every key with module. and stripping it gives the state dict back."""
    state = {k: torch.full((1,), float(v)) for k, v in names.items()}
    wrapped = {f"module.{k}": v for k, v in state.items()}
    assert strip_ddp_prefix(wrapped) == state
    assert strip_ddp_prefix(state) == state or all(k.startswith("module.") for k in state)


def test_strip_ddp_prefix_needs_every_key_prefixed() -> None:
    """One key without the prefix: not a DDP state dict, nothing renamed."""
    state = {"module.a": torch.zeros(1), "b": torch.zeros(1)}
    assert strip_ddp_prefix(state) == state


@given(
    head=st.sampled_from(["classification", "regression"]),
    index=st.integers(0, 3),
    part=st.sampled_from(["weight", "bias"]),
    others=st.lists(KEY, max_size=5),
)
def test_v1_head_keys_are_renamed_and_nothing_else(
    head: str, index: int, part: str, others: list[str]
) -> None:
    """conv.{2i}.weight becomes conv.{i}.0.weight; every other key stays as it was."""
    old = f"head.{head}_head.conv.{2 * index}.{part}"
    state = {old: torch.zeros(1)} | {k: torch.ones(1) for k in others}
    out = upgrade_v1_head_keys(state)
    assert f"head.{head}_head.conv.{index}.0.{part}" in out
    assert old not in out
    assert {k for k in out if k in state} == set(others) - {old}


def test_odd_head_indices_are_not_v1_keys() -> None:
    """The v1 layout had convs at even indices only: conv.1 is left alone."""
    key = "head.regression_head.conv.1.weight"
    assert list(upgrade_v1_head_keys({key: torch.zeros(1)})) == [key]


def test_read_state_dict_takes_plain_files_checkpoints_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain state dict, a checkpoint's 'model' entry and a DDP prefix all read the same."""
    monkeypatch.chdir(tmp_path)
    state = nn.Linear(2, 3).state_dict()
    torch.save(dict(state), "plain.pt")
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 2}, "ckpt.pt")
    for name in ("plain.pt", "./ckpt.pt"):
        got = read_state_dict(name, "weights")
        assert got.keys() == state.keys()
        assert all(torch.equal(got[k], state[k]) for k in state)


def test_read_state_dict_names_the_file_in_every_error(tmp_path: Path) -> None:
    """Missing, unloadable and non-state-dict files are ConfigErrors naming the file."""
    with pytest.raises(ConfigError, match=r"weights: .*absent\.pt: file not found"):
        read_state_dict(tmp_path / "absent.pt", "weights")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match=r"garbage\.pt: not a loadable weights file"):
        read_state_dict(garbage, "weights")
    numbers = tmp_path / "numbers.pt"
    torch.save({"a": 1}, numbers)
    with pytest.raises(ConfigError, match=re.escape("numbers.pt: expected a state dict")):
        read_state_dict(numbers, "weights_backbone")
    with pytest.raises(ConfigError, match=r"weights: .*: file not found"):
        read_state_dict(tmp_path, "weights")  # a folder is not a weights file
