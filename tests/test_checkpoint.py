"""Tests for yolo2retina.checkpoint: the one checkpoint type, its file format and its errors."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from yolo2retina.checkpoint import TRAINING_ONLY_KEYS, Checkpoint
from yolo2retina.errors import ConfigError
from yolo2retina.weights import strip_ddp_prefix


def _weights() -> OrderedDict[str, torch.Tensor]:
    return OrderedDict([("head.w", torch.arange(6.0).reshape(2, 3)), ("head.b", torch.ones(2))])


def _last_pt_dict() -> dict[str, Any]:
    """A last.pt as fit writes it (every key of today's format)."""
    return {
        "model": _weights(),
        "model_args": {"num_classes": 2, "backbone": "resnet18_fpn", "min_size": 64},
        "class_names": ["mite", "bee"],
        "meta": {"train_image_size": 64, "box_size_px": {"median": 5.0}},
        "epoch": 3,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]},
        "scheduler": {"last_epoch": 12},
        "scaler": {},
        "config": {"epochs": 5, "lr": 0.01, "milestones": []},
        "rng": {"torch": torch.get_rng_state()},
        "best_metric": 0.5,
        "best_epoch": 2,
        "bad_epochs": 1,
        "metric": "map50",
        "loss_norm": None,
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_save_load_round_trip_keeps_the_file_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old-format dict (written by plain torch.save, as fit did before Checkpoint) loads;
    saving it again writes the same dict, keys and values, and load records the path."""
    monkeypatch.chdir(tmp_path)
    state = _last_pt_dict()
    torch.save(state, "old.pt")
    ckpt = Checkpoint.load("old.pt")
    assert ckpt.path == Path("old.pt")
    assert ckpt.class_names == ("mite", "bee") and ckpt.epoch == 3 and ckpt.resumable
    assert ckpt.training is not None and ckpt.training["best_metric"] == 0.5
    assert ckpt.save("runs/again.pt") == Path("runs/again.pt")
    again = torch.load("runs/again.pt", map_location="cpu", weights_only=True)
    assert _same(again, state)
    assert _same(Checkpoint.load("runs/again.pt").to_dict(), ckpt.to_dict())
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["again.pt"]  # no temp left


def test_save_replaces_an_existing_file_and_keeps_it_on_failure(tmp_path: Path) -> None:
    """A second save overwrites; a save that fails leaves the previous file and no temp."""
    path = tmp_path / "last.pt"
    first = Checkpoint.from_dict(_last_pt_dict())
    first.save(path)
    second = attrs_evolve(first, epoch=4)
    second.save(path)
    assert Checkpoint.load(path).epoch == 4
    before = path.read_bytes()
    broken = attrs_evolve(first, meta={"bad": lambda: 0})  # a lambda cannot be pickled
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        broken.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def attrs_evolve(ckpt: Checkpoint, **changes: Any) -> Checkpoint:
    import attrs

    return attrs.evolve(ckpt, **changes)


def test_for_inference_drops_the_resume_state(tmp_path: Path) -> None:
    """for_inference keeps weights, args, names, meta, config, epoch and which epoch was best;
    it drops the optimizer, schedule, scaler, RNG, loss-normaliser state and patience count."""
    ckpt = Checkpoint.from_dict(_last_pt_dict())
    best = ckpt.for_inference()
    assert not best.resumable and ckpt.resumable
    assert best.training == {"best_metric": 0.5, "best_epoch": 2, "metric": "map50"}
    best.save(tmp_path / "best.pt")
    state = torch.load(tmp_path / "best.pt", map_location="cpu", weights_only=True)
    assert not set(TRAINING_ONLY_KEYS) & set(state)
    assert {"model", "model_args", "class_names", "meta", "config", "epoch"} <= set(state)
    bare = Checkpoint(_weights(), {"num_classes": 2}, ["a", "b"])
    assert _same(bare.for_inference().to_dict(), bare.to_dict())
    assert bare.training is None and not bare.resumable


def test_ddp_prefix_is_stripped_on_load(tmp_path: Path) -> None:
    """Weights saved from a DistributedDataParallel wrapper ('module.' keys) load unwrapped;
    a state dict where only some keys have the prefix is left alone."""
    state = _last_pt_dict()
    state["model"] = {f"module.{k}": v for k, v in _weights().items()}
    torch.save(state, tmp_path / "ddp.pt")
    assert list(Checkpoint.load(tmp_path / "ddp.pt").model) == ["head.w", "head.b"]
    mixed = {"module.a": torch.zeros(1), "b": torch.zeros(1)}
    assert list(strip_ddp_prefix(mixed)) == ["module.a", "b"]
    assert strip_ddp_prefix({}) == {}


def test_truncated_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    """A cut-off checkpoint (an interrupted copy) raises ConfigError naming the file."""
    path = tmp_path / "last.pt"
    Checkpoint.from_dict(_last_pt_dict()).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ConfigError, match=r"last\.pt: not a loadable checkpoint"):
        Checkpoint.load(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2, 3], r"bad\.pt: not a yolo2retina checkpoint \(expected a dict\)"),
        ({"model": {}}, r"bad\.pt: not a yolo2retina checkpoint \(no model_args, class_names\)"),
        (
            {"model": {"w": 1}, "model_args": {}, "class_names": []},
            r"bad\.pt: 'model' is not a state dict",
        ),
        (
            {"model": {}, "model_args": [], "class_names": []},
            r"bad\.pt: 'model_args' is a list, not a dict",
        ),
        (
            {"model": {}, "model_args": {}, "class_names": "ab"},
            r"bad\.pt: 'class_names' is a str, not a list",
        ),
        (
            {"model": {}, "model_args": {}, "class_names": [], "epoch": 1.5},
            r"bad\.pt: 'epoch' is 1\.5, not an integer",
        ),
    ],
)
def test_not_a_checkpoint_is_a_config_error_naming_the_file(
    tmp_path: Path, content: Any, message: str
) -> None:
    """Anything but a checkpoint dict raises ConfigError naming the file and what is wrong."""
    torch.save(content, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match=message):
        Checkpoint.load(tmp_path / "bad.pt")


def test_missing_and_unsafe_files_are_config_errors(tmp_path: Path) -> None:
    """A missing file and a pickle that weights_only refuses both raise ConfigError."""
    with pytest.raises(ConfigError, match=r"absent\.pt: checkpoint not found"):
        Checkpoint.load(tmp_path / "absent.pt")
    torch.save(
        {"model": {}, "model_args": {}, "class_names": [], "x": Path("a")}, tmp_path / "u.pt"
    )
    with pytest.raises(ConfigError, match=r"u\.pt: not a loadable checkpoint"):
        Checkpoint.load(tmp_path / "u.pt")
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(ConfigError, match=r"dir\.pt: checkpoint not found"):
        Checkpoint.load(tmp_path / "dir.pt")


@given(
    names=st.lists(st.text(min_size=1, max_size=8), max_size=5),
    epoch=st.integers(0, 10_000),
    extra=st.dictionaries(
        st.text(min_size=1, max_size=6).filter(
            lambda k: k not in ("model", "model_args", "class_names", "meta", "config", "epoch")
        ),
        st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
        max_size=4,
    ),
)
def test_from_dict_to_dict_round_trips_any_extra_keys(
    names: list[str], epoch: int, extra: dict[str, Any]
) -> None:
    """Keys the checkpoint does not know (a newer version's) survive a load and a save."""
    state: dict[str, Any] = {
        "model": {},
        "model_args": {"num_classes": len(names)},
        "class_names": names,
    }
    state |= {"meta": {}, "epoch": epoch} | extra
    assert Checkpoint.from_dict(state).to_dict() == state
