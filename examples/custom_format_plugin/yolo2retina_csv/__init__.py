"""A CSV dataset format for yolo2retina: ``<split>.csv`` with ``image,x1,y1,x2,y2,class`` rows.

The class list is the sorted set of class names unless ``class_names`` is given.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yolo2retina.annotations import Annotations, AnnotationsBuilder, LoadReport
from yolo2retina.errors import DatasetError, ImageReadError
from yolo2retina.formats.base import ImageMode, WriteReport
from yolo2retina.image import read_image_hw

HEADER = ["image", "x1", "y1", "x2", "y2", "class"]


class CsvFormat:
    """Reads and writes ``<split>.csv`` files of pixel XYXY boxes."""

    name = "csv"
    description = "one <split>.csv per split: image,x1,y1,x2,y2,class (pixels, XYXY)"

    def detect(self, path: Path) -> bool:
        """A folder holding at least one CSV file whose header is ours."""
        path = Path(path)
        files = [path] if path.suffix == ".csv" else sorted(path.glob("*.csv"))
        for f in files:
            with open(f, newline="", encoding="utf-8") as fh:
                if next(csv.reader(fh), None) == HEADER:
                    return True
        return False

    def splits(self, path: Path) -> tuple[str, ...]:
        """Split names are the CSV file stems."""
        return tuple(sorted(p.stem for p in Path(path).glob("*.csv")))

    def read(
        self,
        path: Path,
        split: str | None = None,
        *,
        class_names: Sequence[str] | None = None,
        strict: bool = False,
        **kwargs: Any,
    ) -> Annotations:
        """Load ``path/<split>.csv`` (or ``path`` itself when it is a CSV file)."""
        path = Path(path)
        file = path if path.suffix == ".csv" else path / f"{split or 'train'}.csv"
        if not file.is_file():
            raise DatasetError(
                f"{file}: no such CSV file; splits here: {self.splits(path.parent if path.suffix == '.csv' else path)}"
            )
        rows: dict[str, list[tuple[list[float], str]]] = {}
        problems: list[str] = []
        with open(file, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            if next(reader, None) != HEADER:
                raise DatasetError(f"{file}:1: header must be {','.join(HEADER)}")
            for lineno, row in enumerate(reader, 2):
                if len(row) != 6:
                    problems.append(f"{file}:{lineno}: expected 6 values, got {len(row)}")
                    continue
                try:
                    xyxy = [float(v) for v in row[1:5]]
                except ValueError:
                    problems.append(f"{file}:{lineno}: coordinates must be numbers")
                    continue
                if not (xyxy[0] < xyxy[2] and xyxy[1] < xyxy[3]):
                    problems.append(f"{file}:{lineno}: need x1 < x2 and y1 < y2")
                    continue
                rows.setdefault(row[0], []).append((xyxy, row[5]))
        names = (
            list(class_names) if class_names else sorted({c for r in rows.values() for _, c in r})
        )
        index = {n: i for i, n in enumerate(names)}
        builder = AnnotationsBuilder()
        for image, boxes in rows.items():
            img = file.parent / image
            try:
                hw = read_image_hw(img)
            except ImageReadError as e:
                problems.append(str(e))
                continue
            unknown = [c for _, c in boxes if c not in index]
            if unknown:
                problems.append(f"{file}: image {image}: unknown class '{unknown[0]}'")
                continue
            builder.add(img, hw, [b for b, _ in boxes], [index[c] for _, c in boxes])
        if problems:
            raise DatasetError(f"cannot load CSV dataset {file}", problems)
        return builder.build(names, LoadReport(source=str(file)))

    def write(
        self,
        splits: Mapping[str, Annotations],
        dst: Path,
        *,
        images: ImageMode = "copy",
        overwrite: bool = False,
        progress: bool = False,
    ) -> WriteReport:
        """Write each split as ``dst/<split>.csv`` with its images copied beside it."""
        dst = Path(dst)
        dst.mkdir(parents=True, exist_ok=True)
        report = WriteReport(destination=str(dst), format=self.name)
        for split, ann in splits.items():
            out = dst / f"{split}.csv"
            if out.exists() and not overwrite:
                raise DatasetError(f"{out}: exists; pass overwrite=True to replace it")
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(HEADER)
            for i in range(len(ann)):
                src = ann.image_path(i)
                target = dst / src.name
                if not target.exists():
                    if images == "symlink":
                        os.symlink(src.resolve(), target)
                    elif images == "hardlink":
                        os.link(src, target)
                    else:
                        shutil.copy2(src, target)
                t = ann.target(i)
                for box, label in zip(t.boxes.astype(np.float64), t.labels, strict=True):
                    w.writerow([src.name, *(repr(float(v)) for v in box), ann.class_names[label]])
                report.images += 1
                report.boxes += len(t)
            tmp = out.with_suffix(".csv.tmp")
            tmp.write_text(buf.getvalue(), encoding="utf-8")
            os.replace(tmp, out)
            report.files.append(str(out))
        background = sum(int((a.boxes_per_image() == 0).sum()) for a in splits.values())
        if background:
            report.lost.append(f"{background} background images (a CSV row needs a box)")
        if any(a.flags.any() for a in splits.values()):
            report.lost.append("crowd/difficult/truncated flags (CSV has no column for them)")
        return report


ADAPTER = CsvFormat()
