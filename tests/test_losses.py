"""Tests for yolo2retina.losses: the batch-normalised RetinaNet loss."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator

import pytest
import torch
from torchvision.models.detection.retinanet import RetinaNet

from yolo2retina.errors import ConfigError
from yolo2retina.losses import (
    LOSS_NORMS,
    BatchNormalizedLoss,
    install_batch_normalized_loss,
    remove_batch_normalized_loss,
)
from yolo2retina.model import build_retinanet

SIZE = 64
#: Small anchors, so that 10-20 px boxes on a 64 px image match several of them.
ANCHORS = ((8.0,), (16.0,), (32.0,), (64.0,), (128.0,))


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a loaded 2-core machine, two threads make these forwards 5x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_model() -> RetinaNet:
    torch.manual_seed(0)
    # frozen BatchNorm: an image's loss does not depend on the other images of its batch
    return build_retinanet(
        num_classes=2,
        backbone="resnet18_fpn",
        min_size=SIZE,
        max_size=SIZE,
        anchor_sizes=ANCHORS,
        frozen_bn=True,
    )


@pytest.fixture
def model(base_model: RetinaNet) -> RetinaNet:
    """A fresh copy of the tiny model, in train mode, with torchvision's loss."""
    m = copy.deepcopy(base_model)
    m.train()
    return m


def crowded() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    boxes = torch.tensor(
        [
            [2, 3, 16, 15],
            [20, 4, 38, 20],
            [44, 2, 60, 14],
            [4, 30, 18, 48],
            [26, 28, 40, 40],
            [46, 40, 62, 60],
            [10, 50, 24, 62],
        ],
        dtype=torch.float32,
    )
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0])
    return torch.rand(3, SIZE, SIZE, generator=g), {"boxes": boxes, "labels": labels}


def sparse() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    boxes = torch.tensor([[30, 30, 44, 42]], dtype=torch.float32)
    return torch.rand(3, SIZE, SIZE, generator=g), {"boxes": boxes, "labels": torch.tensor([1])}


def background() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(3, SIZE, SIZE, generator=g), {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
    }


def losses(
    model: RetinaNet, *samples: tuple[torch.Tensor, dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    images = [s[0] for s in samples]
    targets = [s[1] for s in samples]
    out: dict[str, torch.Tensor] = model(images, targets)
    return out


@pytest.mark.parametrize(
    ("loss_type", "sample"),
    [
        ("l1", crowded),
        ("l1", sparse),
        ("l1", background),
        ("smooth_l1", crowded),
        ("giou", crowded),
    ],
)
def test_one_image_without_momentum_equals_torchvision(
    model: RetinaNet, loss_type: str, sample: object
) -> None:
    """With momentum 0 and one image per batch, the loss is torchvision's own."""
    model.head.regression_head._loss_type = loss_type
    make = sample  # a function returning (image, target)
    assert callable(make)
    expected = losses(model, make())
    install_batch_normalized_loss(model, momentum=0.0)
    got = losses(model, make())
    assert set(got) == set(expected) == {"classification", "bbox_regression"}
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)


def test_background_image_weighs_less_in_a_batch(model: RetinaNet) -> None:
    """torchvision averages per-image losses; the batch loss divides their sum by the batch's fg.

    With a crowded image A (fA foreground anchors) and a background image B, torchvision gives
    (cls_A / fA + cls_B / 1) / 2, so B's background weighs half of the batch; the batch
    normaliser gives (cls_A + cls_B) / fA, so B weighs 1 / fA of A's per-anchor weight.
    The model fires everywhere (class bias 0) so that the background image has a large loss.
    """
    with torch.no_grad():
        model.head.classification_head.cls_logits.bias.fill_(0.0)
    a, b = losses(model, crowded()), losses(model, background())
    tv = losses(model, crowded(), background())
    torch.testing.assert_close(
        tv["classification"], (a["classification"] + b["classification"]) / 2
    )
    torch.testing.assert_close(tv["bbox_regression"], a["bbox_regression"] / 2)

    loss = install_batch_normalized_loss(model, momentum=0.0)
    losses(model, crowded())
    f_a = loss.last_num_foreground
    assert f_a is not None and f_a >= 7  # at least one anchor per box
    batch = losses(model, crowded(), background())
    assert loss.last_num_foreground == f_a  # the background image adds no foreground
    # cls_A = a_cls * fA and cls_B = b_cls * 1, so the batch loss is a_cls + b_cls / fA
    torch.testing.assert_close(
        batch["classification"], a["classification"] + b["classification"] / f_a
    )
    torch.testing.assert_close(batch["bbox_regression"], a["bbox_regression"])
    # the background image's share of the classification loss: under torchvision its anchors
    # weigh fA times those of the crowded image; in the batch loss every anchor weighs the same
    b_cls = b["classification"].detach()
    tv_share = float(b_cls / 2 / tv["classification"].detach())
    batch_share = float(b_cls / f_a / batch["classification"].detach())
    assert tv_share > 0.8 and batch_share < tv_share - 0.2


def test_moving_average_updates_in_training_only(model: RetinaNet) -> None:
    """The normaliser is the bias-corrected moving average of the counts; no_grad leaves it."""
    loss = install_batch_normalized_loss(model, momentum=0.9)
    assert loss.normalizer is None
    assert loss.state_dict() == {"momentum": 0.9, "average": 0.0, "weight": 0.0}
    first = losses(model, crowded())
    n1 = loss.last_num_foreground
    assert n1 is not None and n1 > 0
    assert loss.normalizer == pytest.approx(n1)  # the first batch: its own count
    second = losses(model, background())  # 0 foreground anchors count as 1
    assert loss.last_num_foreground == 0
    # average = 0.9 * 0.1 * n1 + 0.1 * 1, weight = 1 - 0.9**2
    expected = (0.09 * n1 + 0.1) / 0.19
    assert loss.normalizer == pytest.approx(expected)
    # the background batch is divided by the average, not by 1
    remove_batch_normalized_loss(model)
    tv_background = losses(model, background())
    torch.testing.assert_close(second["classification"], tv_background["classification"] / expected)
    assert float(first["classification"].detach()) > 0


def test_initial_value_gives_detectron2_average(model: RetinaNet) -> None:
    """From ``initial`` the average is detectron2's; under no_grad it does not move."""
    loss = install_batch_normalized_loss(model, momentum=0.9, initial=50.0)
    assert loss.normalizer == 50.0
    with torch.no_grad():  # validation losses: each batch by its own count
        val = losses(model, background())
    assert loss.normalizer == 50.0
    losses(model, crowded())
    n1 = loss.last_num_foreground
    assert n1 is not None
    assert loss.normalizer == pytest.approx(0.9 * 50.0 + 0.1 * n1)
    remove_batch_normalized_loss(model)
    torch.testing.assert_close(val["classification"], losses(model, background())["classification"])


def test_state_dict_of_the_model_is_unchanged(model: RetinaNet, base_model: RetinaNet) -> None:
    """Installing keeps the model's state dict, so checkpoints load into a plain RetinaNet."""
    keys = list(model.state_dict())
    loss = install_batch_normalized_loss(model)
    losses(model, crowded())
    assert list(model.state_dict()) == keys
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    plain = copy.deepcopy(base_model)
    plain.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    assert "compute_loss" not in plain.__dict__
    # the average is saved apart, and restored
    other = BatchNormalizedLoss(plain, momentum=0.5)
    other.load_state_dict(loss.state_dict())
    assert (other.momentum, other.normalizer) == (0.9, loss.normalizer)


def test_gradients_flow(model: RetinaNet) -> None:
    """backward() reaches the classification and regression heads with finite gradients."""
    install_batch_normalized_loss(model)
    out = losses(model, crowded(), background())
    sum(out.values()).backward()  # type: ignore[union-attr]
    for head in (model.head.classification_head, model.head.regression_head):
        grads = [p.grad for p in head.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)


def test_install_replaces_and_remove_restores(model: RetinaNet) -> None:
    """A second install replaces the first; remove gives back torchvision's loss."""
    expected = losses(model, sparse())
    first = install_batch_normalized_loss(model)
    second = install_batch_normalized_loss(model, momentum=0.0)
    assert model.compute_loss is second and second is not first
    copied = copy.deepcopy(model)
    assert isinstance(copied.compute_loss, BatchNormalizedLoss)
    assert copied.compute_loss.model is copied
    remove_batch_normalized_loss(model)
    remove_batch_normalized_loss(model)  # a second call does nothing
    assert "compute_loss" not in model.__dict__
    got = losses(model, sparse())
    torch.testing.assert_close(got["classification"], expected["classification"])


def test_install_unwraps_a_ddp_like_wrapper(model: RetinaNet) -> None:
    """A wrapper with ``.module`` (DistributedDataParallel) gets the loss on its RetinaNet."""
    wrapper = torch.nn.Module()
    wrapper.module = model
    loss = install_batch_normalized_loss(wrapper)
    assert model.compute_loss is loss


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"momentum": 1.0}, "momentum must lie in"),
        ({"momentum": -0.1}, "momentum must lie in"),
        ({"initial": 0.5}, "initial must be None or a number >= 1"),
    ],
)
def test_bad_settings_raise(model: RetinaNet, kwargs: dict[str, float], match: str) -> None:
    """A momentum outside [0, 1) or an initial count below 1 is an error."""
    with pytest.raises(ConfigError, match=match):
        install_batch_normalized_loss(model, **kwargs)


def test_other_models_and_loss_types_raise(model: RetinaNet) -> None:
    """Only RetinaNets with a known box loss get the batch loss."""
    with pytest.raises(ConfigError, match="needs a torchvision RetinaNet; got Linear"):
        install_batch_normalized_loss(torch.nn.Linear(2, 2))
    model.head.regression_head._loss_type = "l2"
    with pytest.raises(ConfigError, match="unsupported box loss 'l2'"):
        install_batch_normalized_loss(model)
    model.head.regression_head._loss_type = "l1"
    loss = install_batch_normalized_loss(model)
    good = {"momentum": 0.9, "average": 3.0, "weight": 0.5}
    for key, bad, match in [
        ("average", None, "average must be a number; got None"),
        ("average", -1.0, "average out of range"),
        ("weight", 1.5, "weight out of range"),
        ("momentum", 1.0, "momentum must be < 1"),
    ]:
        with pytest.raises(ConfigError, match=match):
            loss.load_state_dict({**good, key: bad})
    loss.load_state_dict(good)
    assert loss.normalizer == 6.0


def test_loss_norm_names() -> None:
    """The names a config chooses between."""
    assert LOSS_NORMS == ("torchvision", "batch")


def test_loss_normalisation_is_for_the_run_only() -> None:
    """The context installs the batch loss for the block (keeping one the user installed),
    takes a user's one out for "torchvision", and restores the model's loss afterwards;
    a model that is not a RetinaNet is refused for "batch"."""
    from tests._train_helpers import _model, _NaNLoss
    from yolo2retina.losses import (
        BatchNormalizedLoss,
        install_batch_normalized_loss,
        loss_normalisation,
    )

    model = _model()
    with loss_normalisation(model, "batch") as loss:
        assert isinstance(loss, BatchNormalizedLoss) and model.compute_loss is loss
    assert "compute_loss" not in vars(model)
    mine = install_batch_normalized_loss(model, momentum=0.5)
    with loss_normalisation(model, "batch") as loss:
        assert loss is mine
    with loss_normalisation(model, "torchvision") as loss:
        assert loss is None and "compute_loss" not in vars(model)
    assert model.compute_loss is mine
    wrapped = _NaNLoss(_model())
    with (
        pytest.raises(ConfigError, match="needs a torchvision RetinaNet"),
        loss_normalisation(wrapped, "batch"),
    ):
        pass
    with (
        pytest.raises(ConfigError, match="loss_norm must be one of"),
        loss_normalisation(model, "mean"),
    ):
        pass
