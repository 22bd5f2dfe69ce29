"""Builders shared by the format tests: tiny images, VOC XML, COCO JSON, Annotations."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import write_image
from yolo2retina.annotations import Annotations, AnnotationsBuilder

Box = tuple[float, float, float, float]


def voc_xml(
    filename: str,
    size_wh: tuple[int, int] | None,
    objects: Sequence[dict[str, Any]],
    *,
    order: Sequence[str] = ("xmin", "ymin", "xmax", "ymax"),
) -> str:
    """A VOC annotation; each object: name, box (xmin, ymin, xmax, ymax), optional flags/part."""
    parts = [f"<annotation><filename>{filename}</filename>"]
    if size_wh is not None:
        parts.append(
            f"<size><width>{size_wh[0]}</width><height>{size_wh[1]}</height><depth>3</depth></size>"
        )
    for o in objects:
        vals = dict(zip(("xmin", "ymin", "xmax", "ymax"), o["box"], strict=True))
        bnd = "".join(f"<{k}>{vals[k]}</{k}>" for k in order)
        extra = "".join(f"<{k}>{o[k]}</{k}>" for k in ("difficult", "truncated") if k in o)
        part = ""
        if o.get("part"):
            part = (
                "<part><name>hand</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                "<xmax>2</xmax><ymax>2</ymax></bndbox></part>"
            )
        parts.append(
            f"<object><name>{o['name']}</name>{extra}<bndbox>{bnd}</bndbox>{part}</object>"
        )
    parts.append("</annotation>")
    return "\n".join(parts)


def make_voc(
    root: Path,
    images: dict[str, Sequence[dict[str, Any]]],
    *,
    size_wh: tuple[int, int] = (64, 48),
    splits: dict[str, Sequence[str]] | None = None,
) -> Path:
    """A standard VOC folder (Annotations/, JPEGImages/, ImageSets/Main)."""
    for stem, objects in images.items():
        write_image(root / "JPEGImages" / f"{stem}.jpg", size_wh)
        xml = root / "Annotations" / f"{stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(voc_xml(f"{stem}.jpg", size_wh, objects))
    for name, stems in (splits or {}).items():
        main = root / "ImageSets" / "Main"
        main.mkdir(parents=True, exist_ok=True)
        (main / f"{name}.txt").write_text("".join(f"{s}\n" for s in stems))
    return root


def coco_dict(
    images: Sequence[dict[str, Any]],
    annotations: Sequence[dict[str, Any]],
    categories: Sequence[tuple[int, str]] = ((1, "a"), (2, "b")),
) -> dict[str, Any]:
    """A COCO instances dict."""
    return {
        "images": list(images),
        "annotations": list(annotations),
        "categories": [{"id": i, "name": n} for i, n in categories],
    }


def make_coco(
    folder: Path,
    n_images: int = 2,
    anns: Sequence[dict[str, Any]] | None = None,
    *,
    size_wh: tuple[int, int] = (64, 48),
    categories: Sequence[tuple[int, str]] = ((1, "a"), (2, "b")),
    name: str = "ann.json",
) -> Path:
    """Images ``im0.jpg``... with ids 1..n and a JSON beside them."""
    imgs = []
    for i in range(n_images):
        write_image(folder / f"im{i}.jpg", size_wh)
        imgs.append(
            {"id": i + 1, "file_name": f"im{i}.jpg", "width": size_wh[0], "height": size_wh[1]}
        )
    if anns is None:
        anns = [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1.5, 2, 10, 20], "iscrowd": 0}]
    f = folder / name
    f.write_text(json.dumps(coco_dict(imgs, anns, categories)))
    return f


def make_annotations(
    folder: Path,
    images: Sequence[Sequence[tuple[Box, int, int]]],
    *,
    names: Sequence[str] = ("a", "b"),
    size_wh: tuple[int, int] = (64, 48),
    prefix: str = "img",
) -> Annotations:
    """Annotations over real tiny images; each image: rows of (xyxy, label, flags)."""
    b = AnnotationsBuilder()
    for i, rows in enumerate(images):
        p = write_image(folder / f"{prefix}{i}.png", size_wh)
        boxes = np.array([r[0] for r in rows], np.float32).reshape(-1, 4)
        b.add(
            p,
            (size_wh[1], size_wh[0]),
            boxes,
            [r[1] for r in rows],
            [r[2] for r in rows],
            image_id=i + 1,
        )
    return b.build(names)


def coco_ann(i: int, image_id: int, cat: int, bbox: list[Any], **kw: Any) -> dict[str, Any]:
    """One COCO annotation record."""
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, **kw}


def many_coco_anns(n_images: int, per_image: int, **extra: Any) -> list[dict[str, Any]]:
    """``n_images * per_image`` annotations with random positions (seeded), two categories."""
    rng = np.random.default_rng(0)
    out = []
    for k in range(n_images * per_image):
        xy = rng.uniform(0, 40, 2).round(3).tolist()
        out.append(coco_ann(k + 1, k % n_images + 1, 1 + k % 2, [*xy, 5.5, 4.25], **extra))
    return out


def settle(root: Path, age: float = 60.0) -> None:
    """Back-date every file under ``root`` (links themselves, where ``os.utime`` can), as
    for a dataset that was not written just now: the load cache never stores files changed
    in the last 2 s."""
    t = time.time() - age
    links = os.utime in os.supports_follow_symlinks
    for p in [root, *root.rglob("*")]:
        os.utime(p, (t, t), follow_symlinks=not links)
