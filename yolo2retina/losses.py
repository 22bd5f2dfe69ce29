"""RetinaNet losses normalised by the batch's foreground count, smoothed over steps.

torchvision's :class:`~torchvision.models.detection.RetinaNet` divides each image's
classification and box losses by that image's own number of foreground anchors (at least 1)
and averages the images. An image with no object, or with one, then weighs as much as an
image with fifty, and its background anchors' focal loss is divided by 1: a batch of
background tiles makes a loss spike.

The RetinaNet paper divides the loss summed over the batch by the batch's foreground count;
detectron2 divides by an exponential moving average of that count. :class:`BatchNormalizedLoss`
does the latter::

    average = momentum * average + (1 - momentum) * max(num_foreground, 1)
    weight = momentum * weight + (1 - momentum)
    normalizer = average / weight
    loss = sum over the batch of the per-anchor losses / normalizer

Started from ``average = initial, weight = 1`` this is detectron2's average (which starts at
100). Started from ``average = weight = 0`` (the default, ``initial=None``) it is the same
average with Adam's bias correction: the first batch is divided by its own count, and the
first few batches by a weighted mean of the counts so far, so a sparse first batch does not
leave a small normaliser that the next crowded batches would take ~20 steps to outgrow.

with the same anchor matching, sigmoid focal loss, box coder and box loss type as the
model's head. :func:`install_batch_normalized_loss` puts it in place of the model's
``compute_loss``: the model stays a torchvision RetinaNet, its state dict keys do not change,
and its checkpoints load into a plain RetinaNet.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn
from torchvision.models.detection.retinanet import RetinaNet
from torchvision.ops import (
    box_iou,
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    sigmoid_focal_loss,
)

from yolo2retina.choices import LOSS_NORMS as LOSS_NORMS
from yolo2retina.errors import ConfigError

__all__ = [
    "LOSS_NORMS",
    "BatchNormalizedLoss",
    "install_batch_normalized_loss",
    "loss_normalisation",
    "remove_batch_normalized_loss",
]

#: Box loss types of torchvision's RetinaNet regression head (``_loss_type``).
_BOX_LOSSES = ("l1", "smooth_l1", "giou", "ciou", "diou")

#: torchvision's focal loss defaults, which its RetinaNet head uses.
_FOCAL_ALPHA = 0.25
_FOCAL_GAMMA = 2.0


def _retinanet(model: nn.Module) -> RetinaNet:
    net = getattr(model, "module", model)  # DistributedDataParallel keeps the model here
    if not isinstance(net, RetinaNet):
        raise ConfigError(
            f"the batch-normalised loss needs a torchvision RetinaNet; got {type(net).__name__}"
        )
    return net


class BatchNormalizedLoss:
    """A RetinaNet's ``compute_loss``, normalised by a moving average of the batch's foreground.

    Call :func:`install_batch_normalized_loss` rather than making one yourself. The moving
    average lives here, not in the model: the model's state dict is unchanged. Save and
    restore it with :meth:`state_dict` and :meth:`load_state_dict` for an exact resume.

    The average is updated only when gradients are on (training steps). Under
    ``torch.no_grad`` (validation losses) each batch is divided by its own foreground count,
    so validation losses do not depend on the training history.

    Attributes:
        model: the RetinaNet whose head, matcher and box coder are used.
        momentum: weight of the previous average, in ``[0, 1)``; 0 divides each batch by its
            own count.
        average: the moving average, before the bias correction.
        weight: the total weight of the counts folded into ``average``.
        last_num_foreground: the foreground anchors of the last batch (for logging).
    """

    def __init__(
        self, model: RetinaNet, momentum: float = 0.9, *, initial: float | None = None
    ) -> None:
        if not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
            raise ConfigError(f"momentum must lie in [0, 1); got {momentum!r}")
        if initial is not None and not (isinstance(initial, (int, float)) and initial >= 1.0):
            raise ConfigError(f"initial must be None or a number >= 1; got {initial!r}")
        loss_type = getattr(model.head.regression_head, "_loss_type", "l1")
        if loss_type not in _BOX_LOSSES:
            raise ConfigError(
                f"unsupported box loss {loss_type!r} in the regression head; "
                f"supported: {', '.join(_BOX_LOSSES)}"
            )
        self.model = model
        self.momentum = float(momentum)
        self.average = 0.0 if initial is None else float(initial)
        self.weight = 0.0 if initial is None else 1.0
        self.last_num_foreground: int | None = None

    @property
    def normalizer(self) -> float | None:
        """What the next training batch's summed loss is divided by (``None`` before any)."""
        return self.average / self.weight if self.weight > 0 else None

    # -- the computation, in torchvision's steps -------------------------------------------

    def match(self, targets: Sequence[Mapping[str, Tensor]], anchors: Sequence[Tensor]) -> Tensor:
        """The matched target index of every anchor, as the model's ``proposal_matcher`` gives it.

        Args:
            targets: per image, ``"boxes"`` ``(M, 4)`` XYXY in the model's input frame.
            anchors: per image, ``(A, 4)`` XYXY anchors.

        Returns:
            ``(B, A) int64``: the box index, ``-1`` for background, ``-2`` between thresholds.
        """
        matched = []
        for anchors_per_image, target in zip(anchors, targets, strict=True):
            if target["boxes"].numel() == 0:
                matched.append(
                    torch.full(
                        (anchors_per_image.shape[0],),
                        -1,
                        dtype=torch.int64,
                        device=anchors_per_image.device,
                    )
                )
            else:
                quality = box_iou(target["boxes"], anchors_per_image)
                matched.append(self.model.proposal_matcher(quality))
        return torch.stack(matched)

    def loss_sums(
        self,
        targets: Sequence[Mapping[str, Tensor]],
        head_outputs: Mapping[str, Tensor],
        anchors: Sequence[Tensor],
    ) -> tuple[Tensor, Tensor, int]:
        """Classification and box losses summed over the batch, and its foreground count.

        Args:
            targets: per image, ``"boxes"`` ``(M, 4)`` XYXY and ``"labels"`` ``(M,) int64``.
            head_outputs: ``"cls_logits"`` ``(B, A, K)`` and ``"bbox_regression"`` ``(B, A, 4)``.
            anchors: per image, ``(A, 4)`` XYXY anchors.

        Returns:
            ``(classification_sum, box_sum, num_foreground)``.
        """
        matched = self.match(targets, anchors)
        cls_logits = head_outputs["cls_logits"]
        bbox_regression = head_outputs["bbox_regression"]
        foreground = matched >= 0
        num_foreground = int(foreground.sum().item())

        # classification: focal loss over every anchor not between the IoU thresholds
        gt_classes = torch.zeros_like(cls_logits)
        gt_boxes = []
        for i, target in enumerate(targets):
            fg_i = foreground[i]
            idx = matched[i][fg_i]
            gt_classes[i, fg_i, target["labels"][idx]] = 1.0
            gt_boxes.append(target["boxes"][idx])
        valid = matched != self.model.head.classification_head.BETWEEN_THRESHOLDS
        cls_sum = sigmoid_focal_loss(
            cls_logits[valid],
            gt_classes[valid],
            alpha=_FOCAL_ALPHA,
            gamma=_FOCAL_GAMMA,
            reduction="sum",
        )

        # box regression: the head's loss type on the foreground anchors
        anchors_fg = torch.cat([a[foreground[i]] for i, a in enumerate(anchors)])
        box_sum = self._box_loss(bbox_regression[foreground], torch.cat(gt_boxes), anchors_fg)
        return cls_sum, box_sum, num_foreground

    def _box_loss(self, regression: Tensor, gt_boxes: Tensor, anchors: Tensor) -> Tensor:
        head = self.model.head.regression_head
        loss_type = getattr(head, "_loss_type", "l1")
        if loss_type in ("l1", "smooth_l1"):
            target = head.box_coder.encode_single(gt_boxes, anchors)
            if loss_type == "l1":
                return nnf.l1_loss(regression, target, reduction="sum")
            return nnf.smooth_l1_loss(regression, target, reduction="sum", beta=1.0)
        decoded = head.box_coder.decode_single(regression, anchors)
        iou_loss = {
            "giou": generalized_box_iou_loss,
            "ciou": complete_box_iou_loss,
            "diou": distance_box_iou_loss,
        }[loss_type]
        loss: Tensor = iou_loss(decoded, gt_boxes, reduction="sum", eps=1e-7)
        return loss

    def update(self, num_foreground: int) -> float:
        """Fold one batch's foreground count into the moving average; returns the new value."""
        count = float(max(num_foreground, 1))
        self.average = self.momentum * self.average + (1.0 - self.momentum) * count
        self.weight = self.momentum * self.weight + (1.0 - self.momentum)
        return self.average / self.weight

    def __call__(
        self,
        targets: Sequence[Mapping[str, Tensor]],
        head_outputs: Mapping[str, Tensor],
        anchors: Sequence[Tensor],
    ) -> dict[str, Tensor]:
        """``RetinaNet.compute_loss``: ``{"classification": ..., "bbox_regression": ...}``."""
        cls_sum, box_sum, num_foreground = self.loss_sums(targets, head_outputs, anchors)
        self.last_num_foreground = num_foreground
        if torch.is_grad_enabled():
            normalizer = self.update(num_foreground)
        else:
            normalizer = float(max(num_foreground, 1))
        return {"classification": cls_sum / normalizer, "bbox_regression": box_sum / normalizer}

    # -- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The moving average, its weight and the momentum, as plain Python values."""
        return {"momentum": self.momentum, "average": self.average, "weight": self.weight}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            ConfigError: a missing entry, or a value that is not a number in its range.
        """
        values = {}
        for key, low, high in (
            ("momentum", 0.0, 1.0),
            ("average", 0.0, None),
            ("weight", 0.0, 1.0),
        ):
            value = state.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"loss normaliser state: {key} must be a number; got {value!r}")
            if value < low or (high is not None and value > high):
                raise ConfigError(f"loss normaliser state: {key} out of range: {value!r}")
            values[key] = float(value)
        if values["momentum"] >= 1.0:
            raise ConfigError(
                f"loss normaliser state: momentum must be < 1; got {values['momentum']}"
            )
        self.momentum, self.average, self.weight = (
            values["momentum"],
            values["average"],
            values["weight"],
        )

    def __repr__(self) -> str:
        return f"BatchNormalizedLoss(momentum={self.momentum}, normalizer={self.normalizer})"


def install_batch_normalized_loss(
    model: nn.Module, momentum: float = 0.9, *, initial: float | None = None
) -> BatchNormalizedLoss:
    """Make ``model`` compute its training losses with :class:`BatchNormalizedLoss`.

    The loss object is set as the instance attribute ``model.compute_loss``, which
    ``RetinaNet.forward`` calls in train mode; nothing else of the model changes. Installing
    again replaces the previous one (and its average).

    Args:
        model: a torchvision RetinaNet, or a DistributedDataParallel wrapper of one.
        momentum: weight of the previous average, in ``[0, 1)`` (detectron2 uses 0.9).
        initial: the average before the first batch, as detectron2's 100; ``None``: no prior
            value, the average of the counts seen so far (bias-corrected).

    Returns:
        The installed loss (its ``normalizer`` and ``state_dict()``).

    Raises:
        ConfigError: ``model`` is not a RetinaNet, or a bad momentum.

    Example:
        >>> from yolo2retina.model import build_retinanet
        >>> model = build_retinanet(num_classes=1, backbone="resnet18_fpn", min_size=64, max_size=64)
        >>> loss = install_batch_normalized_loss(model, momentum=0.9)
        >>> model.compute_loss is loss
        True
    """
    net = _retinanet(model)
    loss = BatchNormalizedLoss(net, momentum, initial=initial)
    net.compute_loss = loss
    return loss


def remove_batch_normalized_loss(model: nn.Module) -> None:
    """Give ``model`` back torchvision's own ``compute_loss`` (a no-op when none is installed)."""
    net = _retinanet(model)
    if isinstance(net.__dict__.get("compute_loss"), BatchNormalizedLoss):
        del net.compute_loss


@contextmanager
def loss_normalisation(model: nn.Module, norm: str) -> Iterator[BatchNormalizedLoss | None]:
    """Train ``model`` with the loss normalisation ``norm`` inside the ``with`` block.

    ``"batch"`` installs :class:`BatchNormalizedLoss` (or keeps the one
    already installed, with its momentum and average) and yields it; ``"torchvision"`` yields
    ``None`` and takes an installed one out for the block. On exit the model's loss is what
    it was before.

    Raises:
        ConfigError: ``norm`` is not one of :data:`LOSS_NORMS`, or
            ``"batch"`` for a model that is not a torchvision RetinaNet.
    """
    if norm not in LOSS_NORMS:
        raise ConfigError(f"loss_norm must be one of {', '.join(LOSS_NORMS)}; got {norm!r}")
    net = getattr(model, "module", model)  # DistributedDataParallel keeps the model here
    before = vars(net).get("compute_loss")
    own = before if isinstance(before, BatchNormalizedLoss) else None
    loss: BatchNormalizedLoss | None = None
    if norm == "batch":
        loss = own if own is not None else install_batch_normalized_loss(model)
    elif own is not None:
        remove_batch_normalized_loss(model)
    try:
        yield loss
    finally:
        if norm == "batch" and own is None:
            remove_batch_normalized_loss(model)
        elif norm != "batch" and own is not None:
            net.compute_loss = own
