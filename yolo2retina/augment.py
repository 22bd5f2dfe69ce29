"""Training augmentation for small objects on large images, built on torchvision transforms v2.

:func:`augmentation` builds one of the policies in :data:`POLICIES` (``"none"``, ``"light"``,
``"default"``, ``"strong"``) as a callable ``(image, target) -> (image, target)`` on the
samples of :class:`~yolo2retina.dataset.DetectionDataset`: a ``tv_tensors.Image``
``(3, H, W) float32`` and ``{"boxes": BoundingBoxes (N, 4), "labels": (N,) int64,
"image_id": int}``. Every transform moves the boxes with the pixels, and every box that a
transform drops takes its label with it.

Three transforms of :mod:`yolo2retina.box_transforms` complement torchvision's:

* :class:`RandomRot90` turns the image by 0, 90, 180 or 270 degrees (sticky boards have no up);
* :class:`RandomScale` resizes by a random factor (scale jitter);
* :class:`BoxBiasedCrop` cuts a fixed-size window, with probability ``p_box`` around a random
  box, clips the boxes it cuts and drops those of which less than ``min_visible`` of the area
  remains (:func:`crop_boxes`).

Every random draw goes through torch's global RNG, so ``torch.manual_seed`` (and the per-worker
seeds a ``DataLoader`` with a seeded ``generator`` gives its workers) makes the output
reproducible.

The policies that set the scale (``"default"``, ``"strong"``, or any policy with a
``crop_size``) first resize the image so that its longer side is ``img_size``, the size the
model sees at validation, then jitter the scale and crop. The model must then take the
training images as they come: call :func:`set_train_resize` ``(model, False)``, or its own
resize would undo the scale jitter and blow the crops up to ``img_size``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from yolo2retina.box_transforms import BoxBiasedCrop as BoxBiasedCrop
from yolo2retina.box_transforms import RandomRot90 as RandomRot90
from yolo2retina.box_transforms import RandomScale as RandomScale
from yolo2retina.box_transforms import crop_boxes as crop_boxes
from yolo2retina.errors import ConfigError

__all__ = [
    "POLICIES",
    "Augmentation",
    "BoxBiasedCrop",
    "PolicySpec",
    "RandomRot90",
    "RandomScale",
    "augmentation",
    "crop_boxes",
    "describe_policy",
    "policy_table",
    "set_train_resize",
]

_XYXY = tv_tensors.BoundingBoxFormat.XYXY


# -- the policies ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PolicySpec:
    """The exact transforms of one augmentation policy.

    Attributes:
        name: the policy's name.
        flips: random horizontal and vertical flips, each with probability 0.5.
        rot90: a random quarter turn, 0/90/180/270 degrees with equal probability.
        scale_range: ``(low, high)`` of the log-uniform scale factor; ``None``: no scale jitter.
        brightness: ``v2.ColorJitter`` brightness (factor drawn from ``[1 - b, 1 + b]``); 0: off.
        contrast: ColorJitter contrast, as ``brightness``.
        saturation: ColorJitter saturation, as ``brightness``.
        hue: ColorJitter hue shift, drawn from ``[-hue, hue]``; 0: off.
        crop: crop to ``crop_size`` (or ``img_size``) after the scale jitter.
        p_box: probability that a crop is placed around a random box rather than uniformly.
        min_visible: a box cut by a crop is kept when at least this fraction of its area
            remains inside the crop.
        summary: one line for the docs.
    """

    name: str
    flips: bool = False
    rot90: bool = False
    scale_range: tuple[float, float] | None = None
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    crop: bool = False
    p_box: float = 0.5
    min_visible: float = 0.6
    summary: str = ""

    @property
    def color(self) -> bool:
        """Whether the policy jitters colour at all."""
        return any((self.brightness, self.contrast, self.saturation, self.hue))

    @property
    def sets_scale(self) -> bool:
        """Whether the policy resizes and crops itself (the model must not resize again)."""
        return self.scale_range is not None or self.crop


#: Every augmentation policy by name. :func:`augmentation` builds them; docs/augmentation.md
#: lists them (:func:`policy_table`). The names, in this order, are
#: :data:`yolo2retina.choices.AUGMENT_POLICIES` (torch-free, for the CLI's choices).
POLICIES: dict[str, PolicySpec] = {
    "none": PolicySpec(name="none", summary="no augmentation"),
    "light": PolicySpec(
        name="light", flips=True, rot90=True, summary="flips and quarter turns only"
    ),
    "default": PolicySpec(
        name="default",
        flips=True,
        rot90=True,
        scale_range=(0.8, 1.25),
        brightness=0.2,
        contrast=0.2,
        saturation=0.2,
        hue=0.0,  # torchvision's hue shift costs ~0.3 s per megapixel on a CPU core
        crop=True,
        p_box=0.5,
        min_visible=0.6,
        summary="flips, quarter turns, scale jitter, colour jitter, crops that keep cut boxes",
    ),
    "strong": PolicySpec(
        name="strong",
        flips=True,
        rot90=True,
        scale_range=(0.6, 1.6),
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0.05,
        crop=True,
        p_box=0.5,
        min_visible=0.6,
        summary="the default with wider scale and colour ranges",
    ),
}


def _spec(policy: str) -> PolicySpec:
    try:
        return POLICIES[policy]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown augmentation policy {policy!r}; available: {', '.join(POLICIES)}"
        ) from None


def describe_policy(
    policy: str, *, img_size: int | None = None, crop_size: int | None = None
) -> list[str]:
    """The steps of ``policy`` in the order they run, one line each (as in the docs).

    Example:
        >>> describe_policy("light")
        ['horizontal flip, p=0.5', 'vertical flip, p=0.5', 'quarter turn: 0/90/180/270 degrees, p=1/4 each']
    """
    spec = _spec(policy)
    crops = spec.crop or crop_size is not None
    steps: list[str] = []
    if spec.sets_scale or crop_size is not None:
        side = "img_size" if img_size is None else f"{img_size} px"
        steps.append(f"resize: longer side to {side} (the model's input size)")
    if spec.flips:
        steps += ["horizontal flip, p=0.5", "vertical flip, p=0.5"]
    if spec.rot90:
        steps.append("quarter turn: 0/90/180/270 degrees, p=1/4 each")
    if spec.scale_range is not None:
        lo, hi = spec.scale_range
        steps.append(f"scale jitter: factor log-uniform in [{lo:g}, {hi:g}]")
    if crops:
        if crop_size is not None:
            size = f"{crop_size} px"
        elif img_size is not None:
            size = f"{img_size} px"
        else:
            size = "crop_size (default img_size)"
        steps.append(
            f"crop: {size} square window (smaller images are kept whole), "
            f"around a random box with p={spec.p_box:g}, else uniform; "
            f"cut boxes clipped, dropped when < {spec.min_visible:g} of their area is visible"
        )
    if spec.color:
        steps.append(
            f"colour jitter: brightness {spec.brightness:g}, contrast {spec.contrast:g}, "
            f"saturation {spec.saturation:g}, hue {spec.hue:g}"
        )
    if spec.sets_scale or crop_size is not None:
        steps.append("drop boxes under 1 px wide or high, with their labels")
    return steps or ["identity"]


def policy_table() -> str:
    """A Markdown table of every policy's steps, in the order they run (docs/augmentation.md).

    ``crop_size`` adds the resize, the crop and the final drop to any policy.
    """
    specs = list(POLICIES.values())
    off, yes = "-", "yes"

    def row(step: str, cells: Sequence[str]) -> str:
        return f"| {step} | {' | '.join(cells)} |"

    def jitter(value: float) -> str:
        return f"{value:g}" if value else off

    crop_cells = [yes if s.crop else "with `crop_size`" for s in specs]
    scale_cells = [yes if s.sets_scale else "with `crop_size`" for s in specs]
    rows = [
        row("step, in order", [f"`{s.name}`" for s in specs]),
        row("---", ["---"] * len(specs)),
        row("1. resize: longer side to `img_size`", scale_cells),
        row("2. horizontal flip, p=0.5", [yes if s.flips else off for s in specs]),
        row("3. vertical flip, p=0.5", [yes if s.flips else off for s in specs]),
        row("4. quarter turn, 0/90/180/270 degrees", [yes if s.rot90 else off for s in specs]),
        row(
            "5. scale jitter, log-uniform factor",
            [
                f"[{s.scale_range[0]:g}, {s.scale_range[1]:g}]" if s.scale_range else off
                for s in specs
            ],
        ),
        row("6. crop to `crop_size` (default `img_size`)", crop_cells),
        row("6. crop: around a random box with p", [f"{s.p_box:g}" for s in specs]),
        row("6. crop: keep a cut box if visible >=", [f"{s.min_visible:g}" for s in specs]),
        row("7. colour jitter: brightness", [jitter(s.brightness) for s in specs]),
        row("7. colour jitter: contrast", [jitter(s.contrast) for s in specs]),
        row("7. colour jitter: saturation", [jitter(s.saturation) for s in specs]),
        row("7. colour jitter: hue", [jitter(s.hue) for s in specs]),
        row("8. drop boxes under 1 px, with their labels", scale_cells),
    ]
    return "\n".join(rows)


# -- the pipeline -------------------------------------------------------------------------


class Augmentation(v2.Compose):  # type: ignore[misc]  # torchvision is untyped
    """A policy's transforms in order; call it as ``aug(image, target)``.

    Attributes:
        policy: the policy's name.
        img_size: the longer side images are resized to first (``None``: not resized).
        crop_size: the crop's side (``None``: no crop, or ``img_size`` for policies that crop).
        sets_scale: the pipeline resizes and crops itself; the model must not resize the
            training images again (:func:`set_train_resize` ``(model, False)``).
    """

    def __init__(
        self,
        transforms: Sequence[nn.Module],
        *,
        policy: str,
        img_size: int | None,
        crop_size: int | None,
        sets_scale: bool,
    ) -> None:
        super().__init__(list(transforms) or [v2.Identity()])
        self.policy = policy
        self.img_size = img_size
        self.crop_size = crop_size
        self.sets_scale = sets_scale


def _positive_int(value: int | None, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer or None; got {value!r}")


def augmentation(
    policy: str = "default",
    *,
    img_size: int | None = None,
    crop_size: int | None = None,
    min_visible: float | None = None,
    p_box: float | None = None,
    color: bool = True,
) -> Augmentation:
    """The training transforms of ``policy`` (see :data:`POLICIES`) for ``DetectionDataset``.

    Args:
        policy: ``"none"``, ``"light"``, ``"default"`` or ``"strong"``.
        img_size: the model's input size (``min_size = max_size``). Policies that set the
            scale (``"default"``, ``"strong"``, or any with ``crop_size``) first resize the
            longer side to it, so that scale jitter and crops happen at the scale the model
            sees at validation; they need it.
        crop_size: train on ``crop_size`` square crops of the resized image (crop training
            for large tiles, any policy). ``None``: ``"default"`` and ``"strong"`` crop to
            ``img_size`` (after a zoom-in), the others do not crop.
        min_visible: override the policy's visible-fraction rule for cut boxes.
        p_box: override the policy's probability of a box-centred crop.
        color: ``False`` leaves the colour jitter out.

    Returns:
        A callable ``(image, target) -> (image, target)``; its ``sets_scale`` says whether the
        model must skip its own training-time resize (:func:`set_train_resize`).

    Raises:
        ConfigError: an unknown policy, a bad size or probability, or a policy that sets the
            scale without ``img_size``.

    Example:
        >>> aug = augmentation("default", img_size=1024, crop_size=512)
        >>> aug.sets_scale
        True
    """
    spec = _spec(policy)
    _positive_int(img_size, "img_size")
    _positive_int(crop_size, "crop_size")
    sets_scale = spec.sets_scale or crop_size is not None
    if sets_scale and img_size is None:
        why = f"crop_size={crop_size}" if crop_size is not None else f"policy {policy!r}"
        raise ConfigError(
            f"{why} sets the training scale: give img_size, the model's input size "
            "(build_retinanet's min_size = max_size)"
        )
    crop = crop_size if crop_size is not None else (img_size if spec.crop else None)
    steps = _geometry(spec, img_size if sets_scale else None, crop, p_box, min_visible)
    if color and spec.color:
        steps.append(
            v2.ColorJitter(
                brightness=spec.brightness,
                contrast=spec.contrast,
                saturation=spec.saturation,
                hue=spec.hue,
            )
        )
    if sets_scale:
        steps.append(v2.SanitizeBoundingBoxes(min_size=1.0, min_area=1.0))
    return Augmentation(
        steps, policy=policy, img_size=img_size, crop_size=crop, sets_scale=sets_scale
    )


def _geometry(
    spec: PolicySpec,
    resize_to: int | None,
    crop: int | None,
    p_box: float | None,
    min_visible: float | None,
) -> list[nn.Module]:
    """The geometric steps in order: resize, flips, quarter turns, scale jitter, crop."""
    steps: list[nn.Module] = []
    if resize_to is not None:
        steps.append(v2.Resize(size=None, max_size=resize_to, antialias=True))
    if spec.flips:
        steps += [v2.RandomHorizontalFlip(0.5), v2.RandomVerticalFlip(0.5)]
    if spec.rot90:
        steps.append(RandomRot90())
    if spec.scale_range is not None:
        steps.append(RandomScale(spec.scale_range))
    if crop is not None:
        steps.append(
            BoxBiasedCrop(
                crop,
                p_box=spec.p_box if p_box is None else p_box,
                min_visible=spec.min_visible if min_visible is None else min_visible,
            )
        )
    return steps


def set_train_resize(model: nn.Module, enabled: bool) -> None:
    """Switch a torchvision detection model's training-time resize on or off.

    With ``enabled=False`` the model's ``GeneralizedRCNNTransform`` passes training images
    through at the size the augmentation left them (torchvision's ``_skip_resize``, which its
    references use for large-scale jitter); validation and prediction still resize to the
    model's ``min_size``/``max_size``. The state dict does not change.

    Raises:
        ConfigError: the model has no ``transform`` with that switch.
    """
    transform = getattr(model, "transform", None)
    if transform is None or not hasattr(transform, "_skip_resize"):
        raise ConfigError(
            f"{type(model).__name__} has no GeneralizedRCNNTransform whose resize can be skipped"
        )
    transform._skip_resize = not enabled
