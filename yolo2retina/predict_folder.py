"""Predict a folder of photos to an output folder: drawings, counts and exports.

:func:`predict_to_folder` is what ``yolo2retina predict`` runs: it refuses an output that
would overwrite a source or an earlier run (:mod:`yolo2retina.outputs`), then predicts
image by image, writing a drawing and a label file for each, and at the end
``counts.csv``, the COCO results and the VOC dataset (:mod:`yolo2retina.prediction_writers`).

Example:
    >>> from yolo2retina.predictor import Predictor
    >>> p = Predictor.from_checkpoint("runs/demo/best.pt")  # doctest: +SKIP
    >>> run = predict_to_folder(p, p.class_names, ["photos/"], "counted/")  # doctest: +SKIP
    >>> run.totals()  # doctest: +SKIP
    {'varroa': 412}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from tqdm import tqdm

from yolo2retina.counts import count_labels
from yolo2retina.prediction import ImagePrediction, iter_predict
from yolo2retina.prediction_writers import (
    write_counts_csv,
    write_predictions_coco,
    write_predictions_voc,
    write_yolo_txt,
)
from yolo2retina.tiling import TileArg

__all__ = ["PredictRun", "counts_line", "predict_to_folder"]


@attrs.define
class PredictRun:
    """What :func:`predict_to_folder` did.

    Attributes:
        predictions: one per input image, in order (failed ones have ``error`` set).
        class_names: index = label.
        out_dir: the output folder.
        files: every file written (drawings, label files, JSON, CSV).
    """

    predictions: list[ImagePrediction]
    class_names: tuple[str, ...]
    out_dir: Path
    files: list[Path] = attrs.field(factory=list)

    @property
    def failed(self) -> list[ImagePrediction]:
        """The images that could not be read."""
        return [p for p in self.predictions if not p.ok]

    def totals(self) -> dict[str, int]:
        """Detections per class over all images."""
        out = dict.fromkeys(self.class_names, 0)
        for p in self.predictions:
            if p.target is not None:
                for k, v in count_labels(p.target, self.class_names).items():
                    out[k] += v
        return out


def counts_line(prediction: ImagePrediction, class_names: Sequence[str]) -> str:
    """One human line per image: ``name: 57 varroa`` or ``name: ERROR ...``."""
    name = Path(prediction.source).name
    if prediction.target is None:
        return f"{name}: ERROR {prediction.error}"
    counts = count_labels(prediction.target, class_names)
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    return f"{name}: {parts}" if parts else f"{name}: 0 detections"


@attrs.frozen
class _Outputs:
    """Which files a run writes into ``out`` (the ``predict_to_folder`` flags)."""

    out: Path
    draw_images: bool
    save_txt: bool
    save_json: bool
    save_voc: bool

    def planned_files(self, stems: Sequence[str]) -> list[Path]:
        """Every file of the run outside ``voc/`` (``counts.csv`` always)."""
        planned = [self.out / "counts.csv"]
        if self.draw_images:
            planned += [self.out / f"{stem}.png" for stem in stems]
        if self.save_txt:
            planned += [self.out / "labels" / f"{stem}.txt" for stem in stems]
        if self.save_json:
            planned.append(self.out / "predictions.json")
        return planned


def _unique_stem(source: str, used: set[str]) -> str:
    stem = Path(source).stem if not source.startswith("<") else "image"
    name, k = stem, 1
    while name in used:
        name = f"{stem}_{k}"
        k += 1
    used.add(name)
    return name


def _planned_stems(paths: Sequence[str]) -> list[str]:
    used: set[str] = set()
    return [_unique_stem(p, used) for p in paths]


def _expand(sources: Iterable[str | os.PathLike[str]]) -> tuple[list[str], list[str]]:
    """(image files, inputs as given): folders are searched recursively for images."""
    from yolo2retina.image import find_images

    given = [os.fspath(s) for s in sources]
    files: list[str] = []
    for s in given:
        files += [str(f) for f in find_images(s)] if os.path.isdir(s) else [s]
    return files, given


def _refuse_existing(outputs: _Outputs, stems: Sequence[str], *, overwrite: bool) -> None:
    """Refuse before any image is read when a file (or ``voc/``) of this run exists."""
    from yolo2retina.errors import DatasetError
    from yolo2retina.outputs import check_output_files

    check_output_files(outputs.planned_files(stems), overwrite=overwrite)
    voc = outputs.out / "voc"
    if outputs.save_voc and not overwrite and voc.is_dir() and any(voc.iterdir()):
        raise DatasetError(
            f"{voc}: output folder already exists and is not empty; pass overwrite=True "
            "(CLI: --overwrite) to replace its files"
        )


def _write_image_files(
    run: PredictRun, pred: ImagePrediction, stem: str, outputs: _Outputs
) -> None:
    """The drawing and the label file of one predicted image (none for a failed one)."""
    from yolo2retina.plots.boxes import draw

    if pred.target is None or pred.image_hw is None:
        return
    if outputs.draw_images:
        png = outputs.out / f"{stem}.png"
        draw(pred.source, pred.target, run.class_names, png)
        run.files.append(png)
    if outputs.save_txt:
        txt = outputs.out / "labels" / f"{stem}.txt"
        run.files.append(write_yolo_txt(pred.target, pred.image_hw, txt))


def _write_run_files(run: PredictRun, outputs: _Outputs, *, overwrite: bool) -> None:
    """``counts.csv``, and with their flags ``predictions.json`` and ``voc/``."""
    out, names = outputs.out, run.class_names
    run.files.append(write_counts_csv(run.predictions, names, out / "counts.csv"))
    if outputs.save_json:
        run.files.append(write_predictions_coco(run.predictions, names, out / "predictions.json"))
    if outputs.save_voc:
        rep = write_predictions_voc(
            run.predictions, names, out / "voc", exist_ok=True, overwrite=overwrite
        )
        run.files += [Path(f) for f in rep.files]


def predict_to_folder(
    model: Any,
    class_names: Sequence[str],
    sources: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    score_threshold: float = 0.3,
    tile: TileArg = None,
    overlap: float = 0.2,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    save_txt: bool = False,
    save_json: bool = False,
    save_voc: bool = False,
    draw_images: bool = True,
    exist_ok: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> PredictRun:
    """Predict image files and write drawings, counts and exports to ``out_dir``.

    Writes ``<stem>.png`` drawings, ``counts.csv`` (always), ``labels/<stem>.txt``
    (``save_txt``), ``predictions.json`` (``save_json``) and ``voc/`` (``save_voc``);
    each file under a temporary name, then renamed. An image that cannot be read is
    reported (``log`` and ``counts.csv``) and skipped; the others are still processed.

    Before any image is read, the output is refused (see ``docs/outputs.md``) when
    ``out_dir`` is a source folder or an image file, lies inside a source folder or holds
    a source; when it holds files, unless ``exist_ok`` or ``overwrite``; and when a file
    this run would write exists, unless ``overwrite``.

    Args:
        model: a :class:`~yolo2retina.predictor.Predictor` or anything
            :func:`~yolo2retina.prediction.predict` takes.
        class_names: index = label.
        sources: image files, or folders (searched recursively for images).
        out_dir: output folder (created).
        exist_ok: write into a folder that already holds files (only new files).
        overwrite: like ``exist_ok``, and replace files of an earlier run of the same name.
        log: called with one line per image (counts or the error); with a progress bar,
            pass ``tqdm.write`` so lines print above it.
        progress: show a progress bar over images.

    Other arguments are those of :func:`yolo2retina.prediction.predict`.

    Raises:
        DatasetError: the output is refused; the message names the path and the flag
            that allows it.
    """
    from yolo2retina.outputs import check_output_dir

    paths, given = _expand(sources)
    out = check_output_dir(out_dir, inputs=given, exist_ok=exist_ok, overwrite=overwrite)
    stems = _planned_stems(paths)
    outputs = _Outputs(out, draw_images, save_txt, save_json, save_voc)
    _refuse_existing(outputs, stems, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    run = PredictRun([], tuple(class_names), out)
    predictions = iter_predict(
        model,
        paths,
        score_threshold=score_threshold,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        skip_errors=True,
    )
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress) as bar:
        for pred, stem in zip(predictions, stems, strict=True):
            run.predictions.append(pred)
            _write_image_files(run, pred, stem, outputs)
            if log is not None:
                log(counts_line(pred, run.class_names))
            bar.update(1)
    _write_run_files(run, outputs, overwrite=overwrite)
    return run
