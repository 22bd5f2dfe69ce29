"""Tests for yolo2retina.model: the RetinaNet builder, weight loading and checkpoints."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from yolo2retina.annotations import AnnotationsBuilder
from yolo2retina.errors import ConfigError
from yolo2retina.model import (
    BACKBONES,
    build_args,
    build_from_args,
    build_retinanet,
    load_model,
)

torch.set_num_threads(1)
PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)
SMALL = {"min_size": 64, "max_size": 96}


def _target() -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor([[8.0, 10.0, 30.0, 40.0]]), "labels": torch.tensor([0])}


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("num_classes", [1, 5])
def test_builder_head_shapes_and_prior_bias(backbone: str, num_classes: int) -> None:
    """Each backbone gives a 5-level model whose head fits num_classes and 9 anchors."""
    torch.manual_seed(0)
    model = build_retinanet(num_classes=num_classes, backbone=backbone, **SMALL)
    cls_head = model.head.classification_head
    assert model.anchor_generator.num_anchors_per_location() == [9] * 5
    assert cls_head.num_classes == num_classes
    assert cls_head.num_anchors == 9
    assert cls_head.cls_logits.out_channels == 9 * num_classes
    assert model.head.regression_head.bbox_reg.out_channels == 9 * 4
    assert torch.allclose(
        cls_head.cls_logits.bias, torch.full_like(cls_head.cls_logits.bias, PRIOR_BIAS)
    )
    has_group_norm = any(isinstance(m, nn.GroupNorm) for m in model.head.modules())
    assert has_group_norm == (backbone == "resnet50_fpn_v2")
    features = model.backbone(torch.rand(1, 3, 64, 96))
    assert [f.shape[-1] for f in features.values()] == [12, 6, 3, 2, 1]  # strides 8..128
    losses = model([torch.rand(3, 64, 96)], [_target()])
    assert set(losses) == {"classification", "bbox_regression"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_v2_head_uses_giou_and_group_norm_32() -> None:
    """The v2 head keeps torchvision's GroupNorm(32) layers and GIoU box loss."""
    model = build_retinanet(num_classes=2, backbone="resnet50_fpn_v2", **SMALL)
    norms = [m for m in model.head.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 8 and all(m.num_groups == 32 for m in norms)
    assert model.head.regression_head._loss_type == "giou"


def test_eval_mode_returns_detections() -> None:
    """In eval mode the model returns boxes, scores and labels per image."""
    model = build_retinanet(num_classes=3, backbone="resnet18_fpn", detections_per_img=7, **SMALL)
    model.eval()
    with torch.no_grad():
        (out,) = model([torch.rand(3, 64, 80)])
    assert set(out) == {"boxes", "scores", "labels"}
    assert out["boxes"].shape[0] <= 7
    assert model.score_thresh == 0.05 and model.nms_thresh == 0.5


def _save_91_class_weights(
    path: Path, *, as_checkpoint: bool, v1_keys: bool = False
) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    source = build_retinanet(num_classes=91, backbone="resnet18_fpn", **SMALL)
    with torch.no_grad():  # make the BatchNorm statistics distinguishable from a fresh init
        for m in source.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    sd = source.state_dict()
    saved = dict(sd)
    if v1_keys:  # torchvision's first RetinaNet weights named the head convs conv.0.weight
        saved = {
            re.sub(r"_head\.conv\.(\d)\.0\.", lambda m: f"_head.conv.{2 * int(m.group(1))}.", k): v
            for k, v in saved.items()
        }
        assert "head.regression_head.conv.6.weight" in saved
    torch.save({"model": saved, "epoch": 3} if as_checkpoint else saved, path)
    return sd


@pytest.mark.parametrize(
    ("as_checkpoint", "v1_keys"), [(False, False), (True, False), (False, True)]
)
def test_91_class_weights_load_into_2_class_model(
    tmp_path: Path, as_checkpoint: bool, v1_keys: bool
) -> None:
    """Weights of a 91-class model load into a 2-class one: all but the class logits, with a warning."""
    path = tmp_path / "coco.pt"
    sd = _save_91_class_weights(path, as_checkpoint=as_checkpoint, v1_keys=v1_keys)
    with pytest.warns(UserWarning, match=r"skipped 2 .*cls_logits.weight.*cls_logits.bias"):
        model = build_retinanet(num_classes=2, backbone="resnet18_fpn", weights=path, **SMALL)
    own = model.state_dict()
    compared = 0
    for name, tensor in own.items():
        if "cls_logits" in name:
            continue
        assert torch.equal(tensor, sd[name]), name
        compared += 1
    assert compared == len([k for k in sd if "cls_logits" not in k and "num_batches" not in k])
    bias = model.head.classification_head.cls_logits.bias
    assert bias.shape == (18,)
    assert torch.allclose(bias, torch.full_like(bias, PRIOR_BIAS))
    assert model.head.classification_head.cls_logits.weight.shape == (18, 256, 3, 3)


def test_pretrained_weights_freeze_bn_and_early_layers(tmp_path: Path) -> None:
    """With weights, BatchNorm is frozen and only the top 3 backbone stages train by default."""
    path = tmp_path / "w.pt"
    _save_91_class_weights(path, as_checkpoint=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_retinanet(num_classes=2, backbone="resnet18_fpn", weights=path, **SMALL)
    body = model.backbone.body
    assert not any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    assert not body.conv1.weight.requires_grad and not body.layer1[0].conv1.weight.requires_grad
    assert body.layer2[0].conv1.weight.requires_grad and body.layer4[0].conv1.weight.requires_grad
    fresh = build_retinanet(num_classes=2, backbone="resnet18_fpn", **SMALL)
    assert all(p.requires_grad for p in fresh.parameters())


def test_weights_of_another_backbone_raise(tmp_path: Path) -> None:
    """Weights that do not fit the architecture raise instead of loading half-way."""
    path = tmp_path / "r18.pt"
    _save_91_class_weights(path, as_checkpoint=False)
    with pytest.raises(ConfigError, match="do not fit"):
        build_retinanet(num_classes=91, backbone="mobilenet_v3_large_fpn", weights=path, **SMALL)


def test_missing_or_bad_weights_file(tmp_path: Path) -> None:
    """A missing or non-state-dict weights file is a ConfigError naming the file."""
    with pytest.raises(ConfigError, match=r"nope\.pt: file not found"):
        build_retinanet(num_classes=1, backbone="resnet18_fpn", weights=tmp_path / "nope.pt")
    bad = tmp_path / "list.pt"
    torch.save([1, 2, 3], bad)
    with pytest.raises(ConfigError, match=r"list\.pt: expected a state dict"):
        build_retinanet(num_classes=1, backbone="resnet18_fpn", weights=bad)


def test_nothing_downloads_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default arguments never fetch weights; DEFAULT without COCO weights is refused."""

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("download attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    for backbone in BACKBONES:
        build_retinanet(num_classes=2, backbone=backbone, **SMALL)
    with pytest.raises(ConfigError, match="no COCO RetinaNet weights"):
        build_retinanet(num_classes=2, backbone="resnet18_fpn", weights="DEFAULT")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backbone": "vgg16"}, "unknown backbone 'vgg16'; available: resnet50_fpn"),
        ({"num_classes": 0}, "num_classes must be a positive integer"),
        ({"anchor_sizes": ((16, 20, 25),) * 4}, "needs 5 levels"),
        ({"anchor_sizes": "big"}, "anchor_sizes must be None, 'auto'"),
        ({"anchor_sizes": "auto"}, "needs dataset="),
        ({"aspect_ratios": ((0.5, 1.0),) + ((0.5, 1.0, 2.0),) * 4}, "same number of anchors"),
        ({"trainable_backbone_layers": 6}, r"0\.\.5"),
        ({"min_size": 200, "max_size": 100}, "min_size <= max_size"),
        ({"weights": 3}, "weights must be None, 'DEFAULT' or a path"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    """Invalid builder arguments raise ConfigError with an actionable message."""
    args: dict[str, object] = {"num_classes": 2, "backbone": "resnet18_fpn", **SMALL, **kwargs}
    with pytest.raises(ConfigError, match=match):
        build_retinanet(**args)  # type: ignore[arg-type]


def test_custom_anchor_counts_resize_the_head() -> None:
    """Two sizes x three ratios per level give a head with six anchors per location."""
    sizes = tuple((8.0 * 2**i, 11.0 * 2**i) for i in range(5))
    model = build_retinanet(num_classes=3, backbone="resnet18_fpn", anchor_sizes=sizes, **SMALL)
    assert model.head.classification_head.cls_logits.out_channels == 6 * 3
    assert model.anchor_generator.sizes == sizes
    losses = model([torch.rand(3, 64, 64)], [_target()])
    assert all(torch.isfinite(v) for v in losses.values())


def test_auto_anchors_come_from_the_dataset() -> None:
    """anchor_sizes='auto' fits anchors to the dataset's small boxes and records them."""
    rng = np.random.default_rng(0)
    builder = AnnotationsBuilder()
    for i in range(20):
        xy = rng.uniform(0, 200, (10, 2))
        wh = rng.uniform(6, 14, (10, 2))
        builder.add(f"img{i}.jpg", (256, 256), np.concatenate([xy, xy + wh], 1), np.zeros(10))
    ann = builder.build(["mite"])
    model = build_retinanet(
        num_classes=1,
        backbone="resnet18_fpn",
        min_size=256,
        max_size=256,
        anchor_sizes="auto",
        dataset=ann,
    )
    fit = model.anchor_fit
    assert fit.fitted_coverage >= 0.99 > fit.default_coverage
    assert model.anchor_generator.sizes == fit.sizes
    assert build_args(model)["anchor_sizes"] == [list(s) for s in fit.sizes]


def test_build_args_rebuild_the_same_architecture() -> None:
    """build_args gives keyword arguments that rebuild an identical architecture."""
    model = build_retinanet(
        num_classes=4, backbone="mobilenet_v3_large_fpn", nms_thresh=0.4, **SMALL
    )
    args = build_args(model)
    assert args["weights"] is None and args["backbone"] == "mobilenet_v3_large_fpn"
    again = build_retinanet(**args)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in again.state_dict().items()}
    assert again.nms_thresh == 0.4
    with pytest.raises(ConfigError, match="not built by"):
        build_args(nn.Linear(2, 2))


def test_load_model_round_trip(tmp_path: Path) -> None:
    """load_model rebuilds a checkpoint into an eval-mode model with identical outputs."""
    torch.manual_seed(2)
    model = build_retinanet(num_classes=2, backbone="resnet18_fpn", score_threshold=0.0, **SMALL)
    ckpt = {
        "model": model.state_dict(),
        "model_args": build_args(model),
        "class_names": ["varroa", "bee"],
        "meta": {"train_image_size": 64, "box_size_px": {"median": 14.0, "p10": 9.0, "p90": 20.0}},
        "epoch": 1,
    }
    path = tmp_path / "best.pt"
    torch.save(ckpt, path)
    loaded = load_model(path)
    assert loaded.class_names == ("varroa", "bee")
    assert loaded.meta["train_image_size"] == 64
    assert loaded.model_args == build_args(model)
    assert not loaded.model.training
    image = torch.rand(3, 64, 64)
    model.eval()
    with torch.no_grad():
        expected, got = model([image])[0], loaded.model([image])[0]
    assert torch.equal(expected["boxes"], got["boxes"])
    assert torch.equal(expected["scores"], got["scores"])


def test_load_model_rejects_other_files(tmp_path: Path) -> None:
    """A file that is not a yolo2retina checkpoint raises ConfigError naming what is missing."""
    path = tmp_path / "plain.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(ConfigError, match="no model_args, class_names"):
        load_model(path)
    with pytest.raises(ConfigError, match="checkpoint not found"):
        load_model(tmp_path / "absent.pt")


def test_load_model_refuses_weights_of_another_shape(tmp_path: Path) -> None:
    """A checkpoint whose weights do not match its model_args raises instead of skipping tensors."""
    model = build_retinanet(num_classes=2, backbone="resnet18_fpn", **SMALL)
    args = build_args(model) | {"num_classes": 3}
    path = tmp_path / "broken.pt"
    torch.save(
        {"model": model.state_dict(), "model_args": args, "class_names": ["a", "b", "c"]}, path
    )
    with pytest.raises(ConfigError, match="cls_logits"):
        load_model(path)


def test_ddp_prefixed_state_dict_loads(tmp_path: Path) -> None:
    """A state dict saved from a DistributedDataParallel wrapper (module. prefix) loads."""
    torch.manual_seed(4)
    model = build_retinanet(num_classes=2, backbone="resnet18_fpn", **SMALL)
    path = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    again = build_retinanet(
        num_classes=2, backbone="resnet18_fpn", weights=path, frozen_bn=False, **SMALL
    )
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name


def test_default_coco_weights_path_without_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """weights='DEFAULT' takes torchvision's COCO state dict (old head layout) and fits it to K classes."""
    from torchvision.models._api import WeightsEnum
    from torchvision.models.detection import retinanet_resnet50_fpn

    torch.manual_seed(5)
    coco = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    old_layout = {
        re.sub(r"_head\.conv\.(\d)\.0\.", lambda m: f"_head.conv.{2 * int(m.group(1))}.", k): v
        for k, v in coco.items()
    }
    requested = []

    def fake_get_state_dict(
        self: WeightsEnum, *args: object, **kwargs: object
    ) -> dict[str, torch.Tensor]:
        requested.append(self.url)
        return old_layout

    monkeypatch.setattr(WeightsEnum, "get_state_dict", fake_get_state_dict)
    with pytest.warns(UserWarning, match="torchvision COCO weights.*skipped 2"):
        model = build_retinanet(num_classes=2, weights="DEFAULT", **SMALL)
    assert requested and "retinanet_resnet50_fpn_coco" in requested[0]
    own = model.state_dict()
    assert torch.equal(
        own["head.regression_head.conv.3.0.weight"], coco["head.regression_head.conv.3.0.weight"]
    )
    assert torch.equal(
        own["backbone.body.layer4.2.conv3.weight"], coco["backbone.body.layer4.2.conv3.weight"]
    )
    frozen = [m for m in model.modules() if type(m).__name__ == "FrozenBatchNorm2d"]
    assert frozen and all(m.eps == 0.0 for m in frozen)  # as torchvision's COCO_V1 weights need


def test_score_threshold_is_the_keyword_and_score_thresh_is_deprecated() -> None:
    """score_threshold sets the model's threshold; score_thresh still works, with a warning."""
    model = build_retinanet(num_classes=1, backbone="resnet18_fpn", score_threshold=0.2, **SMALL)
    assert model.score_thresh == 0.2
    assert build_args(model)["score_threshold"] == 0.2 and "score_thresh" not in build_args(model)
    with pytest.warns(DeprecationWarning, match="score_thresh=.*score_threshold="):
        old = build_retinanet(num_classes=1, backbone="resnet18_fpn", score_thresh=0.3, **SMALL)
    assert old.score_thresh == 0.3 and build_args(old)["score_threshold"] == 0.3
    with (
        pytest.raises(ConfigError, match="pass score_threshold only"),
        pytest.warns(DeprecationWarning),
    ):
        build_retinanet(
            num_classes=1, backbone="resnet18_fpn", score_threshold=0.2, score_thresh=0.3, **SMALL
        )
    with pytest.raises(ConfigError, match="score_threshold and nms_thresh must lie in"):
        build_retinanet(num_classes=1, backbone="resnet18_fpn", score_threshold=1.5, **SMALL)


@pytest.mark.parametrize("key", ["score_thresh", "score_threshold"])
def test_load_model_reads_either_score_key(tmp_path: Path, key: str) -> None:
    """Checkpoints of older runs (model_args with score_thresh) and new ones both load."""
    torch.manual_seed(6)
    model = build_retinanet(num_classes=2, backbone="resnet18_fpn", score_threshold=0.25, **SMALL)
    args = build_args(model)
    args[key] = args.pop("score_threshold")
    path = tmp_path / "best.pt"
    torch.save({"model": model.state_dict(), "model_args": args, "class_names": ["a", "b"]}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # loading an old run is not deprecated
        loaded = load_model(path)
    assert loaded.model.score_thresh == 0.25
    assert loaded.model_args == build_args(model)  # one name: score_threshold


def test_conflicting_score_keys_in_model_args_raise() -> None:
    """model_args that give both names with different values are refused, naming the source."""
    args = build_args(build_retinanet(num_classes=1, backbone="resnet18_fpn", **SMALL))
    with pytest.raises(ConfigError, match=r"run\.pt: model_args has score_thresh=0\.5"):
        build_from_args(args | {"score_thresh": 0.5}, source="run.pt")
    with pytest.raises(ConfigError, match=r"run\.pt: model_args has unknown keys \['colour'\]"):
        build_from_args(args | {"colour": "red"}, source="run.pt")


def test_build_from_args_of_a_run_without_frozen_bn() -> None:
    """model_args written before frozen_bn existed rebuild with torchvision's rule."""
    args = build_args(build_retinanet(num_classes=1, backbone="resnet18_fpn", **SMALL))
    del args["frozen_bn"]
    model = build_from_args(args | {"weights": "coco.pt"})  # recorded, never read again
    assert model.spec.frozen_bn is True
    assert build_from_args(args).spec.frozen_bn is False


def test_build_args_through_distributed_data_parallel(tmp_path: Path) -> None:
    """build_args reads a DistributedDataParallel-wrapped model (one gloo process)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    model = build_retinanet(num_classes=2, backbone="resnet18_fpn", **SMALL)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        wrapped = DistributedDataParallel(model)
        assert build_args(wrapped) == build_args(model)
        assert list(wrapped.state_dict()) == [f"module.{k}" for k in model.state_dict()]
    finally:
        dist.destroy_process_group()


def test_old_names_stay_importable_from_model() -> None:
    """Names that moved to weights.py and backbones.py still import from yolo2retina.model."""
    from yolo2retina import anchors, backbones, model, weights

    assert model.load_state_dict_matching is weights.load_state_dict_matching
    assert model.LoadResult is weights.LoadResult
    assert model.BACKBONES is backbones.BACKBONES
    assert model.NUM_LEVELS is anchors.NUM_LEVELS == len(anchors.STRIDES)


def test_load_model_reads_a_saved_checkpoint_by_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Checkpoint saved from a DDP state dict loads by a relative path; junk names the file."""
    from yolo2retina.checkpoint import Checkpoint

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(7)
    model = build_retinanet(num_classes=1, backbone="resnet18_fpn", **SMALL)
    wrapped = {f"module.{k}": v for k, v in model.state_dict().items()}
    Checkpoint(wrapped, build_args(model), ("mite",), meta={"epochs": 2}).save("run.pt")
    loaded = load_model("run.pt")
    assert loaded.path == Path("run.pt") and loaded.meta == {"epochs": 2}
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[name]), name
    Path("junk.pt").write_bytes(Path("run.pt").read_bytes()[:100])  # a truncated copy
    with pytest.raises(ConfigError, match=r"junk\.pt: not a loadable checkpoint"):
        load_model("junk.pt")
    Checkpoint(model.state_dict(), build_args(model), ("a", "b")).save("run.pt")
    with pytest.raises(ConfigError, match=r"run\.pt: 2 class names for a 1-class model"):
        load_model("run.pt")


@pytest.mark.parametrize("backbone", ["resnet18_fpn", "mobilenet_v3_large_fpn"])
def test_fpn_channels_set_the_fpn_and_head_width_and_survive_a_checkpoint(
    tmp_path: Path, backbone: str
) -> None:
    """fpn_channels=64 makes every FPN level and every head convolution 64 wide; the
    checkpoint records it and load_model rebuilds the same model (same outputs)."""
    torch.manual_seed(3)
    model = build_retinanet(
        num_classes=1, backbone=backbone, fpn_channels=64, score_threshold=0.0, **SMALL
    )
    model.eval()
    with torch.no_grad():
        levels = model.backbone(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in levels.values()] == [64] * 5
    convs = [m for m in model.head.modules() if isinstance(m, nn.Conv2d)]
    assert {c.in_channels for c in convs} == {64}
    assert build_args(model)["fpn_channels"] == 64
    path = tmp_path / "sub" / "best.pt"
    path.parent.mkdir()
    torch.save(
        {"model": model.state_dict(), "model_args": build_args(model), "class_names": ["m"]},
        path,
    )
    loaded = load_model(path)
    assert loaded.model.spec.fpn_channels == 64
    image = torch.rand(3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model([image])[0]["scores"], loaded.model([image])[0]["scores"])


def test_model_args_without_fpn_channels_rebuild_at_256() -> None:
    """Checkpoints written before fpn_channels existed had torchvision's 256 channels."""
    args = build_args(build_retinanet(num_classes=1, backbone="resnet18_fpn", **SMALL))
    assert args.pop("fpn_channels") == 256
    assert build_from_args(args).backbone.out_channels == 256


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fpn_channels": 0}, r"fpn_channels must be a positive integer, got 0"),
        ({"fpn_channels": 1.5}, r"fpn_channels must be a positive integer, got 1\.5"),
        ({"fpn_channels": True}, r"fpn_channels must be a positive integer, got True"),
        (
            {"fpn_channels": 48, "backbone": "resnet50_fpn_v2"},
            r"multiple of 32 for resnet50_fpn_v2.*got 48",
        ),
        (
            {"fpn_channels": 128, "weights": "DEFAULT"},
            r"weights='DEFAULT'.*256 FPN channels, got fpn_channels=128",
        ),
    ],
)
def test_bad_fpn_channels_raise_before_anything_downloads(
    kwargs: dict[str, object], match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.hub

    def no_download(*args: object, **kw: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    with pytest.raises(ConfigError, match=match):
        build_retinanet(num_classes=1, **{"backbone": "resnet18_fpn", **SMALL, **kwargs})
