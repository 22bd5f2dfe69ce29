"""Tests for yolo2retina.choices: the torch-free names match what the torch modules build.

The CLI lists these names as its choices without importing torch; each test here fails when
a builder gains or loses a name that :mod:`yolo2retina.choices` does not list (or the
reverse), so the two cannot drift apart.
"""

from __future__ import annotations

import argparse

import pytest

from yolo2retina import choices
from yolo2retina.errors import ConfigError


def test_backbone_builders_are_the_backbone_names() -> None:
    """Every name has its own builder (an unlisted one used to fall through to resnet50)."""
    import yolo2retina.model
    from yolo2retina import backbones

    assert tuple(backbones._BUILDERS) == choices.BACKBONES
    assert backbones.BACKBONES is choices.BACKBONES
    assert yolo2retina.model.BACKBONES is choices.BACKBONES


def test_resnet_builders_keep_their_p6_input() -> None:
    """resnet50_fpn_v2 feeds C5 (2048 channels) to P6, the other ResNets P5 (the FPN width)."""
    from yolo2retina.backbones import build_backbone

    def p6_in(name: str) -> int:
        net = build_backbone(name, None, frozen_bn=True, trainable_layers=0, fpn_channels=64)
        return int(net.fpn.extra_blocks.p6.in_channels)  # type: ignore[union-attr]

    assert [p6_in(n) for n in ("resnet18_fpn", "resnet50_fpn_v2")] == [64, 2048]
    with pytest.raises(ConfigError, match="unknown backbone 'resnet34_fpn'; available: resnet50"):
        build_backbone("resnet34_fpn", None, frozen_bn=True, trainable_layers=0)


def test_augment_policies_are_the_policy_names() -> None:
    from yolo2retina.augment import POLICIES

    assert tuple(POLICIES) == choices.AUGMENT_POLICIES
    assert [spec.name for spec in POLICIES.values()] == list(choices.AUGMENT_POLICIES)


def test_loss_norms_are_the_loss_norm_names() -> None:
    import yolo2retina.losses

    assert yolo2retina.losses.LOSS_NORMS is choices.LOSS_NORMS == ("torchvision", "batch")


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("optimizer", choices.OPTIMIZERS),
        ("schedule", choices.SCHEDULES),
        ("amp", choices.AMP_MODES),
        ("metric", choices.METRICS),
        ("augment", choices.AUGMENT_POLICIES),
        ("loss_norm", choices.LOSS_NORMS),
    ],
)
def test_train_config_takes_exactly_the_listed_names(field: str, names: tuple[str, ...]) -> None:
    from yolo2retina.train_config import TrainConfig

    extra = {"milestones": (2,)} if field == "schedule" else {}  # multistep needs them
    for name in names:
        assert getattr(TrainConfig(**{field: name}, **extra), field) == name
    with pytest.raises(ConfigError, match=f"{field} must be one of {', '.join(names)}; got 'x'"):
        TrainConfig(**{field: "x"}, **extra)


def test_train_command_offers_the_listed_names() -> None:
    """``yolo2retina train``'s choices are the tuples here, in the same order."""
    from yolo2retina.commands import train

    p = argparse.ArgumentParser()
    train.add_arguments(p)
    offered = {a.dest: tuple(a.choices) for a in p._actions if a.choices is not None}
    assert offered == {
        "backbone": choices.BACKBONES,
        "anchors": ("auto", "default"),
        "device": ("auto", "cuda", "mps", "cpu"),
        "optimizer": choices.OPTIMIZERS,
        "augment": choices.AUGMENT_POLICIES,
        "loss_norm": choices.LOSS_NORMS,
        "amp": choices.AMP_MODES,
        "metric": choices.METRICS,
    }
