"""Write predictions out: YOLO txt with confidence, COCO results JSON, Pascal VOC XML, counts CSV.

* YOLO: Ultralytics' ``predict --save-txt --save-conf`` layout, one ``labels/<stem>.txt``
  per image with ``class cx cy w h conf`` rows (normalized to the upright image).
  Unlike Ultralytics, an image without detections gets an empty file, so "looked and
  found nothing" differs from "not processed".
* COCO: a results JSON (``[{image_id, category_id, bbox, score}]``) written by
  :func:`yolo2retina.formats.coco.write_coco_results`; ``image_id`` is the image's
  index in the run (the ``image_id`` column of ``counts.csv``), category ids are
  ``label + 1`` (``1..K``, as :func:`~yolo2retina.formats.coco.write_coco` numbers them).
* VOC: a Pascal VOC dataset of the predictions (``Annotations/*.xml``, ``JPEGImages/``,
  ``ImageSets/Main/train.txt``, ``classes.txt``) written by
  :func:`yolo2retina.formats.voc.write_voc`, ready to correct in a labelling tool.
  VOC has no score field: the scores are not in the XML.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from tqdm import tqdm

from yolo2retina.annotations import Annotations, AnnotationsBuilder, LoadReport
from yolo2retina.errors import ConfigError
from yolo2retina.formats._common import atomic_write_text
from yolo2retina.formats.registry import ImageMode, WriteReport
from yolo2retina.predict import ImagePrediction, TileArg, count_labels, counts_table, iter_predict
from yolo2retina.target import Target

__all__ = [
    "PredictRun",
    "counts_line",
    "predict_to_folder",
    "predictions_to_annotations",
    "write_counts_csv",
    "write_predictions_coco",
    "write_predictions_voc",
    "write_yolo_txt",
    "yolo_txt_lines",
]


def yolo_txt_lines(target: Target, image_hw: tuple[int, int]) -> str:
    """Ultralytics predict rows ``class cx cy w h conf`` (6 significant digits), one per box.

    Raises:
        ConfigError: the target has no scores.
    """
    if target.scores is None:
        raise ConfigError("YOLO prediction rows need scores (a Target from predict())")
    h, w = image_hw
    rows = np.concatenate(
        [target.to_yolo((w, h)), target.scores.astype(np.float64).reshape(-1, 1)], axis=1
    )
    return "".join(
        f"{int(c)} " + " ".join(f"{v:.6g}" for v in r) + "\n"
        for c, r in zip(target.labels.tolist(), rows, strict=True)
    )


def write_yolo_txt(target: Target, image_hw: tuple[int, int], path: str | os.PathLike[str]) -> Path:
    """Write one image's detections as an Ultralytics ``--save-conf`` label file (atomically)."""
    p = Path(path)
    atomic_write_text(p, yolo_txt_lines(target, image_hw))
    return p


def predictions_to_annotations(
    predictions: Sequence[ImagePrediction], class_names: Sequence[str]
) -> Annotations:
    """The successful predictions as :class:`Annotations` (image id = index in ``predictions``).

    Images that failed are left out; ``image_ids`` keep the index of each image in
    ``predictions`` so ids stay those of ``counts.csv``.
    """
    builder = AnnotationsBuilder()
    for i, p in enumerate(predictions):
        if p.target is None or p.image_hw is None:
            continue
        builder.add(p.source, p.image_hw, p.target.boxes, p.target.labels, None, image_id=i)
    return builder.build(class_names, LoadReport(source="predictions"))


def _ok(predictions: Sequence[ImagePrediction]) -> list[Target]:
    return [p.target for p in predictions if p.target is not None]


def write_predictions_coco(
    predictions: Sequence[ImagePrediction],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """Write a COCO results JSON for the images that were predicted."""
    from yolo2retina.formats.coco import write_coco_results

    ann = predictions_to_annotations(predictions, class_names)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_coco_results(_ok(predictions), ann, p)


def write_predictions_voc(
    predictions: Sequence[ImagePrediction],
    class_names: Sequence[str],
    dst: str | os.PathLike[str],
    *,
    images: ImageMode = "symlink",
    exist_ok: bool = False,
    overwrite: bool = False,
) -> WriteReport:
    """Write the predictions as a Pascal VOC dataset (scores are not kept; VOC has none).

    Written like every dataset (:func:`yolo2retina.formats.write_annotations`): into a
    temporary folder renamed to ``dst`` at the end.

    Args:
        images: how images get into ``JPEGImages/``: ``"symlink"`` (default), ``"copy"``
            or ``"hardlink"``. In-memory images cannot be exported.
        exist_ok: write into an existing ``dst`` that holds files (only new files).
        overwrite: like ``exist_ok``, and replace files of the same name.
    """
    from yolo2retina.formats import write_annotations

    bad = [p.source for p in predictions if p.target is not None and not Path(p.source).is_file()]
    if bad:
        raise ConfigError(f"VOC export needs image files; not a file: {bad[0]}")
    return write_annotations(
        predictions_to_annotations(predictions, class_names),
        dst,
        "voc",
        images=images,
        exist_ok=exist_ok,
        overwrite=overwrite,
    )


def write_counts_csv(
    predictions: Sequence[ImagePrediction],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """Write ``counts.csv``: ``image_id, image, total, <one column per class>, error``."""
    rows: list[dict[str, Any]] = [
        {"image_id": i, **row} for i, row in enumerate(counts_table(predictions, class_names))
    ]
    fields = ["image_id", "image", "total", *class_names, "error"]
    if len(set(fields)) != len(fields):
        raise ConfigError(f"class names clash with the counts.csv columns: {list(class_names)}")
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    p = Path(path)
    atomic_write_text(p, text.getvalue())
    return p


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


def _unique_stem(source: str, used: set[str]) -> str:
    stem = Path(source).stem if not source.startswith("<") else "image"
    name, k = stem, 1
    while name in used:
        name = f"{stem}_{k}"
        k += 1
    used.add(name)
    return name


def counts_line(prediction: ImagePrediction, class_names: Sequence[str]) -> str:
    """One human line per image: ``name: 57 varroa`` or ``name: ERROR ...``."""
    name = Path(prediction.source).name
    if prediction.target is None:
        return f"{name}: ERROR {prediction.error}"
    counts = count_labels(prediction.target, class_names)
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    return f"{name}: {parts}" if parts else f"{name}: 0 detections"


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
        model: a :class:`~yolo2retina.predict.Predictor` or anything :func:`predict` takes.
        class_names: index = label.
        sources: image files, or folders (searched recursively for images).
        out_dir: output folder (created).
        exist_ok: write into a folder that already holds files (only new files).
        overwrite: like ``exist_ok``, and replace files of an earlier run of the same name.
        log: called with one line per image (counts or the error); with a progress bar,
            pass ``tqdm.write`` so lines print above it.
        progress: show a progress bar over images.

    Other arguments are those of :func:`yolo2retina.predict.predict`.

    Raises:
        DatasetError: the output is refused; the message names the path and the flag
            that allows it.
    """
    from yolo2retina.draw import draw
    from yolo2retina.errors import DatasetError
    from yolo2retina.outputs import check_output_dir, check_output_files

    paths, given = _expand(sources)
    out = check_output_dir(out_dir, inputs=given, exist_ok=exist_ok, overwrite=overwrite)
    stems = _planned_stems(paths)
    planned = [out / "counts.csv"]
    if draw_images:
        planned += [out / f"{stem}.png" for stem in stems]
    if save_txt:
        planned += [out / "labels" / f"{stem}.txt" for stem in stems]
    if save_json:
        planned.append(out / "predictions.json")
    check_output_files(planned, overwrite=overwrite)
    voc = out / "voc"
    if save_voc and not overwrite and voc.is_dir() and any(voc.iterdir()):
        raise DatasetError(
            f"{voc}: output folder already exists and is not empty; pass overwrite=True "
            "(CLI: --overwrite) to replace its files"
        )
    out.mkdir(parents=True, exist_ok=True)
    run = PredictRun([], tuple(class_names), out)
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=not progress)
    try:
        for pred, stem in zip(
            iter_predict(
                model,
                paths,
                score_threshold=score_threshold,
                tile=tile,
                overlap=overlap,
                batch_size=batch_size,
                device=device,
                skip_errors=True,
            ),
            stems,
            strict=True,
        ):
            run.predictions.append(pred)
            if pred.target is not None and pred.image_hw is not None:
                if draw_images:
                    png = out / f"{stem}.png"
                    draw(pred.source, pred.target, class_names, png)
                    run.files.append(png)
                if save_txt:
                    txt = out / "labels" / f"{stem}.txt"
                    run.files.append(write_yolo_txt(pred.target, pred.image_hw, txt))
            if log is not None:
                log(counts_line(pred, class_names))
            bar.update(1)
    finally:
        bar.close()
    run.files.append(write_counts_csv(run.predictions, class_names, out / "counts.csv"))
    if save_json:
        run.files.append(
            write_predictions_coco(run.predictions, class_names, out / "predictions.json")
        )
    if save_voc:
        rep = write_predictions_voc(
            run.predictions, class_names, voc, exist_ok=True, overwrite=overwrite
        )
        run.files += [Path(f) for f in rep.files]
    return run
