"""From a dataset path to a trained model: what ``yolo2retina train`` calls.

:func:`prepare_training` loads the dataset, builds the augmentation and the RetinaNet
(:class:`TrainingSetup`); :func:`run_training` is :func:`~yolo2retina.train.fit` on it. With
``config.resume`` (see :func:`~yolo2retina.train_resume.resume_config`) both continue a run
from its checkpoint and, without ``data``, from the dataset it was trained on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
from torch import nn

from yolo2retina.backbones import FPN_CHANNELS
from yolo2retina.checkpoint import Checkpoint
from yolo2retina.run_folder import check_out_dir
from yolo2retina.train_config import DEMO_DATA, TrainConfig
from yolo2retina.train_fit import FitResult, fit
from yolo2retina.train_resume import check_class_names, check_resumable
from yolo2retina.train_setup import seed_everything

__all__ = ["TrainingSetup", "prepare_training", "run_training"]


def _load_split(data: Path, format: str, splits: Sequence[str], **kw: Any) -> tuple[Any, str]:
    """The first split of ``splits`` that loads, or ``(None, why the last one failed)``."""
    from yolo2retina.dataset import DetectionDataset
    from yolo2retina.errors import DatasetError

    why = ""
    for split in splits:
        try:
            return DetectionDataset.from_path(data, format=format, split=split, **kw), ""
        except (DatasetError, KeyError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
    return None, why


@attrs.frozen
class TrainingSetup:
    """What :func:`prepare_training` built: everything :func:`~yolo2retina.train.fit` needs.

    Attributes:
        model: the RetinaNet (its training resize off when ``augmentation.sets_scale``).
        train: the training split, with ``augmentation`` as its ``transforms``.
        val: the validation split, or ``None`` when the data has none.
        augmentation: the training transforms (:func:`yolo2retina.augment.augmentation`).
        model_args: the ``build_retinanet`` arguments, for the checkpoints.
        meta: the data source and format, for the checkpoints.
    """

    model: nn.Module
    train: Any
    val: Any
    augmentation: Any
    model_args: dict[str, Any]
    meta: dict[str, Any]

    def fit(self, config: TrainConfig, *, log: Callable[[str], None] = print) -> FitResult:
        """:func:`~yolo2retina.train.fit` this model on these splits, with the checkpoints'
        args and metadata."""
        return fit(
            self.model,
            self.train,
            self.val,
            config,
            model_args=self.model_args,
            class_names=self.train.class_names,
            meta=self.meta,
            log=log,
        )


def prepare_training(
    data: str | os.PathLike[str] | None,
    config: TrainConfig,
    *,
    format: str = "auto",
    backbone: str = "resnet50_fpn",
    img_size: int = 800,
    fpn_channels: int = FPN_CHANNELS,
    weights: str | None = None,
    weights_backbone: str | None = None,
    anchors: Literal["auto", "default"] = "auto",
    reader_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> TrainingSetup:
    """Load a dataset and build the augmentation and the RetinaNet that :func:`run_training` trains.

    The same arguments as :func:`run_training`, which is ``fit`` on what this returns. The
    training split gets ``augmentation(config.augment, img_size=..., crop_size=config.crop_size)``
    as its transforms, where the size is ``img_size`` or, with ``config.resume``, the
    checkpoint's ``min_size``. When the policy sets the scale itself, the model's training
    resize is switched off (:func:`yolo2retina.augment.set_train_resize`); validation and
    prediction still resize whole images to the model's size.
    """
    from yolo2retina.augment import augmentation, set_train_resize
    from yolo2retina.model import build_args

    resume = _checked_resume(config.resume)
    data, options = _data_source(data, reader_options, resume)
    check_out_dir(
        config.out_dir,
        overwrite=config.overwrite,
        resume=config.resume,
        inputs=[data] if data is not None and Path(data).exists() else [],  # else: not found
    )
    size = img_size if resume is None else int(resume.model_args["min_size"])
    aug = augmentation(config.augment, img_size=size, crop_size=config.crop_size)
    data_path = Path(data) if data is not None else _demo_data(Path(config.out_dir), log)
    train_ds, val_ds = _load_splits(data_path, format, aug, options, log)
    if resume is not None:
        check_class_names(config.resume or "", resume.class_names, train_ds.class_names)
    seed_everything(config.seed)  # the initial weights (and anchor fit) repeat with the seed
    model = _build_model(
        resume, train_ds, backbone=backbone, img_size=img_size, fpn_channels=fpn_channels,
        weights=weights, weights_backbone=weights_backbone, anchors=anchors,
    )  # fmt: skip
    if aug.sets_scale:
        set_train_resize(model, False)  # the augmentation resizes, jitters and crops
    crop = f", {aug.crop_size} px crops" if aug.crop_size is not None else ""
    log(f"augment: {config.augment} at {size} px{crop}")
    return TrainingSetup(
        model=model,
        train=train_ds,
        val=val_ds,
        augmentation=aug,
        model_args=build_args(model),
        meta={
            "data": os.fspath(data_path.resolve()),
            "format": format,
            # cache= says how to load, not what: a resumed run uses the cache again
            "reader_options": {k: os.fspath(v) for k, v in options.items() if k != "cache"},
        },
    )


def _checked_resume(path: str | None) -> Checkpoint | None:
    """The checkpoint to resume, refused when it is a ``best.pt`` (weights only)."""
    if path is None:
        return None
    ckpt = Checkpoint.load(path)
    check_resumable(path, ckpt)
    return ckpt


def _demo_data(out_dir: Path, log: Callable[[str], None]) -> Path:
    """Write the synthetic sticky board (:data:`~yolo2retina.train_config.DEMO_DATA`) into
    ``out_dir / "data"``."""
    from yolo2retina.synthetic import synthetic_sticky_board

    data_root = out_dir / "data"
    log(f"no --data: writing the synthetic sticky board to {data_root}")
    return synthetic_sticky_board(data_root, **DEMO_DATA)


def _data_source(
    data: str | os.PathLike[str] | None,
    reader_options: Mapping[str, Any] | None,
    resume: Checkpoint | None,
) -> tuple[str | os.PathLike[str] | None, dict[str, Any]]:
    """``data`` and the reader options; a resumed run's own when ``data`` is ``None``."""
    options = dict(reader_options or {})
    if data is None and resume is not None:
        data = resume.meta.get("data")
        options = dict(resume.meta.get("reader_options", {})) | options
    return data, options


def _load_splits(
    data: Path, format: str, aug: Any, options: Mapping[str, Any], log: Callable[[str], None]
) -> tuple[Any, Any]:
    """The training split (with ``aug``) and the validation split (or ``None``)."""
    from yolo2retina.dataset import DetectionDataset

    train = DetectionDataset.from_path(
        data, format=format, split="train", transforms=aug, **options
    )
    val, why = _load_split(data, format, ["val", "valid"], **options)
    log(f"train: {train!r}")
    log(f"val:   {val!r}" if val is not None else f"val:   none, training without ({why})")
    return train, val


def _build_model(
    resume: Checkpoint | None,
    train: Any,
    *,
    backbone: str,
    img_size: int,
    fpn_channels: int,
    weights: str | None,
    weights_backbone: str | None,
    anchors: Literal["auto", "default"],
) -> nn.Module:
    """A new RetinaNet for ``train``'s classes, or the resumed one's architecture."""
    from yolo2retina.model import build_retinanet

    if resume is not None:
        rebuild = {**resume.model_args, "weights": None, "weights_backbone": None}
        model: nn.Module = build_retinanet(**rebuild)
        return model
    model = build_retinanet(
        num_classes=len(train.class_names),
        backbone=backbone,
        fpn_channels=fpn_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        min_size=img_size,
        max_size=img_size,
        anchor_sizes="auto" if anchors == "auto" else None,
        dataset=train.annotations if anchors == "auto" else None,
    )
    return model


def run_training(
    data: str | os.PathLike[str] | None,
    config: TrainConfig,
    *,
    format: str = "auto",
    backbone: str = "resnet50_fpn",
    img_size: int = 800,
    fpn_channels: int = FPN_CHANNELS,
    weights: str | None = None,
    weights_backbone: str | None = None,
    anchors: Literal["auto", "default"] = "auto",
    reader_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Load a dataset, build a RetinaNet for it and :func:`~yolo2retina.train.fit` it.

    ``data=None`` writes the synthetic sticky board
    (:data:`~yolo2retina.train_config.DEMO_DATA`) into ``config.out_dir / "data"`` and trains
    on it. With ``config.resume`` the model is rebuilt
    from the checkpoint's ``model_args`` and ``data`` defaults to the dataset it was trained on;
    the data's class names must be the checkpoint's.

    Everything is checked before anything is written: the run folder
    (:func:`~yolo2retina.run_folder.check_out_dir`), the dataset and the resumed checkpoint's
    classes. The model is built after :func:`~yolo2retina.train_setup.seed_everything`
    (``config.seed``), so the same call gives the same initial weights.

    The training images are augmented with ``config.augment`` (and cropped to
    ``config.crop_size``), see :func:`prepare_training`; validation runs on whole images.

    Args:
        data: a ``data.yaml``, a dataset folder, a VOC folder or a COCO ``.json`` with a
            ``train`` split and a ``val`` (or ``valid``) split; ``None`` for the demo.
        config: training settings.
        format: dataset format, ``"auto"`` to detect it.
        backbone: see :func:`yolo2retina.model.build_retinanet`.
        img_size: the longer image side the model sees (``min_size = max_size = img_size``).
        fpn_channels: the FPN and head width (see :func:`yolo2retina.model.build_retinanet`).
        weights: ``None``, ``"DEFAULT"`` (downloads COCO weights) or a checkpoint path.
        weights_backbone: ``None``, ``"DEFAULT"`` (downloads ImageNet weights) or a path.
        anchors: ``"auto"`` fits anchor sizes to the training boxes (the coverage figures are
            printed), ``"default"`` keeps torchvision's 32-512 px anchors.
        reader_options: keywords for the format reader, e.g. ``{"images_root": ...}`` for a
            COCO file whose images lie elsewhere (kept in the checkpoint for ``resume``);
            ``{"cache": False}`` turns the load cache off (not kept).
        log: where progress lines go.

    Raises:
        DatasetError: the training split cannot be loaded.
        ConfigError: a bad setting, an unusable checkpoint, a checkpoint trained on other
            classes, or a run folder that holds another run or lies inside the dataset.
    """
    setup = prepare_training(
        data,
        config,
        format=format,
        backbone=backbone,
        img_size=img_size,
        fpn_channels=fpn_channels,
        weights=weights,
        weights_backbone=weights_backbone,
        anchors=anchors,
        reader_options=reader_options,
        log=log,
    )
    return setup.fit(config, log=log)
