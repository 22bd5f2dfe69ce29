"""Tests for yolo2retina.model_spec: the spec of a built model, its checks and its assembly."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo2retina.errors import ConfigError
from yolo2retina.model import build_args, build_retinanet
from yolo2retina.model_spec import RetinaNetSpec, assemble, checked_spec

torch.set_num_threads(1)
SMALL = {"min_size": 64, "max_size": 96}


def _arguments(**changes: Any) -> dict[str, Any]:
    """build_retinanet's defaults (small sizes), as checked_spec takes them."""
    args: dict[str, Any] = {
        "num_classes": 2,
        "backbone": "resnet18_fpn",
        "weights": None,
        "weights_backbone": None,
        "trainable_backbone_layers": None,
        "anchor_sizes": None,
        "aspect_ratios": None,
        "score_threshold": 0.05,
        "nms_thresh": 0.5,
        "detections_per_img": 300,
        "dataset": None,
        "frozen_bn": None,
        **SMALL,
    }
    return args | changes


@pytest.mark.parametrize(
    ("changes", "layers", "frozen"),
    [
        ({}, 5, False),
        ({"backbone": "mobilenet_v3_large_fpn"}, 6, False),
        ({"weights": "w.pt"}, 3, True),
        ({"weights_backbone": "DEFAULT"}, 3, True),
        ({"weights": "w.pt", "frozen_bn": False, "trainable_backbone_layers": 0}, 0, False),
    ],
)
def test_defaults_follow_torchvision(changes: dict[str, Any], layers: int, frozen: bool) -> None:
    """Pretrained: 3 trainable stages and frozen BatchNorm; from scratch: all stages train."""
    spec, fit = checked_spec(**_arguments(**changes))
    assert (spec.trainable_backbone_layers, spec.frozen_bn, fit) == (layers, frozen, None)


size = st.floats(1.0, 1000.0, allow_nan=False)
# five levels with the same number of sizes (1-3) each
pyramid = st.integers(1, 3).flatmap(
    lambda n: st.lists(st.lists(size, min_size=n, max_size=n), min_size=5, max_size=5)
)


@settings(max_examples=40, deadline=None)
@given(
    sizes=pyramid,
    score=st.floats(0.0, 1.0),
    nms=st.floats(0.01, 1.0),
    detections=st.integers(1, 1000),
)
def test_spec_kwargs_give_the_same_spec_back(
    sizes: list[list[float]], score: float, nms: float, detections: int
) -> None:
    """spec -> to_kwargs -> checked_spec is the identity (what a checkpoint round trip needs)."""
    spec, _ = checked_spec(
        **_arguments(
            anchor_sizes=sizes, score_threshold=score, nms_thresh=nms, detections_per_img=detections
        )
    )
    again, _ = checked_spec(**_arguments(**spec.to_kwargs()))
    assert again == spec
    kwargs = spec.to_kwargs()
    assert kwargs["anchor_sizes"] == [list(map(float, s)) for s in sizes]
    assert kwargs["weights"] is None and kwargs["score_threshold"] == score


def test_the_first_bad_argument_is_named() -> None:
    """The checks run in the builder's order: the backbone before the sizes, and so on."""
    with pytest.raises(ConfigError, match="unknown backbone"):
        checked_spec(**_arguments(backbone="vgg", min_size=0))
    with pytest.raises(ConfigError, match="weights must be None"):
        checked_spec(**_arguments(weights=3, min_size=0))
    with pytest.raises(ConfigError, match="detections_per_img must be >= 1"):
        checked_spec(**_arguments(detections_per_img=0, trainable_backbone_layers=9))


def test_assemble_keeps_spec_and_fit() -> None:
    """The assembled model carries the spec it was made from and the given anchor fit."""
    spec, _ = checked_spec(**_arguments())
    model = assemble(spec, None, None)
    assert model.spec is spec and model.anchor_fit is None
    assert model.head.classification_head.num_classes == 2


def test_built_model_is_a_plain_retinanet_that_copies_and_pickles() -> None:
    """The spec rides along through deepcopy and pickle and adds nothing to the state dict."""
    from torchvision.models.detection import RetinaNet, retinanet_resnet50_fpn

    model = build_retinanet(num_classes=3, backbone="resnet50_fpn", **SMALL)
    assert isinstance(model, RetinaNet) and isinstance(model.spec, RetinaNetSpec)
    assert model.anchor_fit is None  # only anchor_sizes="auto" fits anchors
    reference = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    ours, theirs = model.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    for again in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert build_args(again) == build_args(model)
        assert list(again.state_dict()) == list(ours)
