"""Scoring a model on a dataset: run it, compute the COCO metric, write an evaluation folder.

:func:`evaluate` runs a torchvision detection model over a
:class:`~yolo2retina.dataset.DetectionDataset` (:func:`predict_dataset`) and scores it with
:func:`~yolo2retina.coco_metric.coco_map`; :func:`write_evaluation` writes
``metrics.json``, ``predictions.json`` and the plots. torch loads only when a model runs.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo2retina.annotations import Annotations
from yolo2retina.atomic import atomic_write_text
from yolo2retina.coco_metric import Metrics, coco_map
from yolo2retina.confusion import confusion_matrix
from yolo2retina.device import resolve_device
from yolo2retina.errors import ConfigError
from yolo2retina.outputs import check_output_dir, check_output_files, dataset_folders
from yolo2retina.plots.pr import plot_confusion_matrix, plot_pr_curves, pr_curve_paths
from yolo2retina.target import Target

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

    from yolo2retina.dataset import DetectionDataset
    from yolo2retina.prediction import DetectionModel

__all__ = ["evaluate", "predict_dataset", "write_evaluation"]


# -- writing an evaluation ----------------------------------------------------------------------


def write_evaluation(
    out_dir: str | os.PathLike[str],
    metrics: Metrics,
    predictions: Sequence[Target],
    ground_truth: Annotations,
    *,
    plots: bool = True,
    score_threshold: float = 0.3,
    extra: Mapping[str, Any] | None = None,
    exist_ok: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Write an evaluation folder: ``metrics.json``, ``predictions.json`` and the plots.

    * ``metrics.json``: :meth:`Metrics.to_dict` plus the confusion matrix and ``extra``;
    * ``predictions.json``: COCO results (original image and category ids when the
      ground truth came from COCO), readable by pycocotools' ``loadRes``;
    * ``pr_<index>_<class>.png`` (IoU 0.5) and ``confusion_matrix.png`` when ``plots`` is
      true and matplotlib is installed (otherwise a warning says how to install it).

    Every file is written under a temporary name and renamed. Before anything is
    written, the folder is refused when it holds files (unless ``exist_ok`` or
    ``overwrite``), when a file to write exists (unless ``overwrite``), or when it
    overlaps the dataset's folders (see ``docs/outputs.md``).

    Args:
        out_dir: the folder (created when missing).
        metrics: the result of :func:`~yolo2retina.coco_metric.coco_map` for ``predictions``.
        predictions: one Target with scores per image of ``ground_truth``.
        ground_truth: the annotations that were evaluated.
        plots: draw the PNGs.
        score_threshold: lowest score that counts in the confusion matrix.
        extra: more JSON-ready keys for ``metrics.json`` (e.g. data and weights paths).
        exist_ok: write into a folder that already holds other files.
        overwrite: like ``exist_ok``, and replace the files of an earlier evaluation.

    Returns:
        The files written.

    Raises:
        DatasetError: the output folder or a file in it is refused (the message names
            the path and the flag that allows it).
    """
    from yolo2retina.formats.coco import write_coco_results

    out = check_output_dir(
        out_dir, inputs=dataset_folders(ground_truth), exist_ok=exist_ok, overwrite=overwrite
    )
    planned = [out / "metrics.json", out / "predictions.json"]
    if plots:
        planned += [out / "confusion_matrix.png", *pr_curve_paths(metrics, out).values()]
    check_output_files(planned, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    cm = confusion_matrix(ground_truth, predictions, score_threshold=score_threshold)
    record = dict(extra or {})
    record.update(metrics.to_dict())
    record["confusion_matrix"] = {
        "iou_threshold": 0.5,
        "score_threshold": score_threshold,
        "labels": [*ground_truth.class_names, "background"],
        "rows": "true class",
        "columns": "predicted class",
        "matrix": cm.tolist(),
    }
    written = [atomic_write_text(out / "metrics.json", json.dumps(record, indent=2) + "\n")]
    written.append(write_coco_results(predictions, ground_truth, out / "predictions.json"))
    if plots:
        try:
            written += plot_pr_curves(metrics, out)
            written.append(
                plot_confusion_matrix(
                    cm,
                    ground_truth.class_names,
                    out / "confusion_matrix.png",
                    title=f"confusion matrix at IoU 0.5, score >= {score_threshold:g}",
                )
            )
        except ImportError as e:
            warnings.warn(f"plots skipped: {e}", stacklevel=2)
    return written


# -- running a model ---------------------------------------------------------------------------


def predict_dataset(
    model: torch.nn.Module | DetectionModel,
    dataset: DetectionDataset,
    *,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    progress: bool = True,
    num_workers: int = 0,
) -> list[Target]:
    """Run a detection model over a dataset; one Target per image, in order.

    Boxes are mapped back to the original image frame (``dataset.image_hw(i)``) when the
    dataset decoded a smaller image (``max_size``) or its transforms resized it. A torch
    model is put in eval mode on ``device``, and its train/eval mode is restored
    afterwards; any other callable (an
    :class:`~yolo2retina.onnx_runtime.OnnxDetector`) is called as it is.

    Args:
        model: a torchvision detection model (e.g. RetinaNet) with labels ``0..K-1``, or
            any callable that takes a list of ``(3, H, W)`` float tensors and returns
            torchvision's output (one dict of ``boxes``, ``labels``, ``scores`` per image).
        dataset: a :class:`~yolo2retina.dataset.DetectionDataset`.
        batch_size: images per forward pass.
        device: where to run (the images are moved there); default: the device of a torch
            model's parameters, the CPU for another callable.
        progress: show a tqdm progress bar.
        num_workers: DataLoader worker processes.

    Returns:
        ``len(dataset)`` Targets with ``scores``.
    """
    import torch
    from torch.utils.data import DataLoader

    from yolo2retina.dataset import collate

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    module = model if isinstance(model, torch.nn.Module) else None
    dev = resolve_device(device, model=module)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate
    )
    if module is None:
        found, dropped = _run_batches(model, loader, dataset, dev, progress)
    else:
        was_training = module.training
        module.eval()
        module.to(dev)
        try:
            found, dropped = _run_batches(module, loader, dataset, dev, progress)
        finally:
            module.train(was_training)
    if dropped:
        warnings.warn(
            f"predict_dataset: dropped {dropped} predicted boxes with zero width or height",
            stacklevel=2,
        )
    empty = Target(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
    return [found.get(i, empty) for i in range(len(dataset))]


def _run_batches(
    model: torch.nn.Module | DetectionModel,
    loader: DataLoader[Any],
    dataset: DetectionDataset,
    dev: torch.device,
    progress: bool,
) -> tuple[dict[int, Target], int]:
    """``{dataset index: Target in the original frame}`` and the boxes dropped."""
    import torch
    from tqdm.auto import tqdm

    from yolo2retina.prediction import outputs_to_targets

    found: dict[int, Target] = {}
    dropped = 0
    next_index = 0
    with torch.no_grad():
        for images, targets in tqdm(
            loader, desc="evaluate", unit="batch", disable=not progress, leave=False
        ):
            outputs = model([img.to(dev) for img in images])
            index = []
            for tgt in targets:
                index.append(int(tgt.get("image_id", next_index)))
                next_index = index[-1] + 1
            res = outputs_to_targets(
                outputs,
                [dataset.image_hw(i) for i in index],
                inputs_hw=[(int(img.shape[-2]), int(img.shape[-1])) for img in images],
                sort=False,  # keep the model's order, as evaluation always has
            )
            found.update(zip(index, res.targets, strict=True))
            dropped += res.dropped
    return found, dropped


def evaluate(
    model: torch.nn.Module | DetectionModel,
    dataset: DetectionDataset,
    *,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    progress: bool = True,
    num_workers: int = 0,
    pycocotools_compat: bool = False,
) -> Metrics:
    """Run ``model`` over ``dataset`` and compute :func:`~yolo2retina.coco_metric.coco_map`
    against its annotations.

    Args:
        model: a torchvision detection model with labels ``0..K-1``, or another callable
            that gives its output (see :func:`predict_dataset`).
        dataset: a :class:`~yolo2retina.dataset.DetectionDataset` (its annotations are the
            ground truth, in the original image frame).
        batch_size: images per forward pass.
        device: where to run; default: the device of a torch model's parameters, else
            the CPU.
        progress: show a tqdm progress bar.
        num_workers: DataLoader worker processes.
        pycocotools_compat: passed to :func:`~yolo2retina.coco_metric.coco_map`
            (pycocotools' scoring of ground-truth annotation id 0).

    Returns:
        The :class:`~yolo2retina.coco_metric.Metrics`.

    Example:
        >>> metrics = evaluate(model, DetectionDataset(val_annotations))  # doctest: +SKIP
        >>> metrics.map, metrics.map50  # doctest: +SKIP
    """
    preds = predict_dataset(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        progress=progress,
        num_workers=num_workers,
    )
    return coco_map(dataset.annotations, preds, pycocotools_compat=pycocotools_compat)
