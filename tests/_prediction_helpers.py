"""Stand-in detectors, painted images and tiny checkpoints shared by the prediction tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

NAMES = ["varroa", "bee"]


class IdDetector:
    """Finds objects painted with a unique id: ``R * 256 + G`` is the id, ``B // 50`` the class.

    Like a real detector looking through a tile, it sees only the part of an object
    inside the tile, so objects cut by a tile border come back as clipped boxes.
    """

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.calls.append(len(images))
        out = []
        for t in images:
            a = (t * 255).round().to(torch.int64).numpy()
            ids = a[0] * 256 + a[1]
            ys, xs = np.nonzero(ids)
            uniq, inv = np.unique(ids[ys, xs], return_inverse=True)
            n = len(uniq)
            x0 = np.full(n, 1 << 30)
            y0 = np.full(n, 1 << 30)
            x1 = np.zeros(n, np.int64)
            y1 = np.zeros(n, np.int64)
            np.minimum.at(x0, inv, xs)
            np.minimum.at(y0, inv, ys)
            np.maximum.at(x1, inv, xs + 1)
            np.maximum.at(y1, inv, ys + 1)
            out.append(
                {
                    "boxes": torch.tensor(np.stack([x0, y0, x1, y1], 1), dtype=torch.float32),
                    "labels": torch.from_numpy(a[2, y0, x0] // 50),
                    "scores": torch.full((n,), 0.9),
                }
            )
        return out


class BrightDetector:
    """Returns the bounding box of all bright pixels (one object, class 0)."""

    def __call__(self, images: list[torch.Tensor]) -> list[Mapping[str, torch.Tensor]]:
        out = []
        for t in images:
            ys, xs = torch.nonzero(t.mean(0) > 0.6, as_tuple=True)
            if ys.numel() == 0:
                box = torch.zeros((0, 4))
            else:
                box = torch.tensor(
                    [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32
                )
            n = box.shape[0]
            out.append(
                {"boxes": box, "labels": torch.zeros(n, dtype=torch.int64), "scores": torch.ones(n)}
            )
        return out


def paint(size_wh: tuple[int, int], boxes: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """An ``(H, W, 3) uint8`` black image with object ``i`` painted with id ``i + 1``."""
    w, h = size_wh
    a = np.zeros((h, w, 3), dtype=np.uint8)
    for i, ((x0, y0, x1, y1), c) in enumerate(zip(boxes.astype(int), labels, strict=True)):
        a[y0:y1, x0:x1] = ((i + 1) // 256, (i + 1) % 256, 50 * c)
    return a


def border_objects(
    size_wh: tuple[int, int], windows: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Small boxes across interior tile edges and corners, plus scattered ones, not touching."""
    w, h = size_wh
    xs = sorted({int(v) for v in windows[:, [0, 2]].ravel() if 0 < v < w})
    ys = sorted({int(v) for v in windows[:, [1, 3]].ravel() if 0 < v < h})
    cand = []
    for x in xs:  # straddling vertical tile edges at several offsets
        for y in rng.uniform(30, h - 60, 3):
            cand.append((x - rng.integers(3, 17), y))
    for y in ys:  # straddling horizontal tile edges
        for x in rng.uniform(30, w - 60, 3):
            cand.append((x, y - rng.integers(3, 17)))
    for x in xs[::2]:  # across tile corners
        for y in ys[::2]:
            cand.append((x - 9, y - 11))
    cand += [(x, y) for x, y in rng.uniform(30, [w - 60, h - 60], (15, 2))]
    out: list[list[float]] = []
    for x, y in cand:
        s = int(rng.integers(18, 27))
        b = [float(int(x)), float(int(y)), float(int(x) + s), float(int(y) + s)]
        if all(
            b[2] + 4 < o[0] or o[2] + 4 < b[0] or b[3] + 4 < o[1] or o[3] + 4 < b[1] for o in out
        ):
            out.append(b)
    return np.asarray(out)


def sort_rows(b: np.ndarray) -> np.ndarray:
    """Rows of ``b`` in lexicographic order."""
    return b[np.lexsort(b.T[::-1])]


def write_rotated_photo(path: Path, upright: Image.Image) -> Path:
    """Store ``upright`` rotated 90° as phones do, with EXIF orientation 6."""
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif.tobytes())
    return path


def tiny_retinanet() -> torch.nn.Module:
    """A few-thousand-parameter RetinaNet: 3 strided convs, one level, 16-32 px anchors."""
    from collections import OrderedDict

    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    class Backbone(torch.nn.Module):
        out_channels = 32

        def __init__(self) -> None:
            super().__init__()
            layers: list[torch.nn.Module] = []
            c = 3
            for _ in range(3):
                layers += [torch.nn.Conv2d(c, 32, 3, 2, 1), torch.nn.ReLU()]
                c = 32
            layers += [torch.nn.Conv2d(32, 32, 3, 1, 1), torch.nn.ReLU()]
            self.body = torch.nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
            return OrderedDict([("0", self.body(x))])

    anchors = AnchorGenerator(sizes=((16, 24, 32),), aspect_ratios=((1.0,),))
    return RetinaNet(
        Backbone(),
        num_classes=1,
        anchor_generator=anchors,
        min_size=128,
        max_size=128,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
        score_thresh=0.05,
    )


def board(rng: np.random.Generator, size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic sticky board: grey speckled background, ``n`` dark-brown 20 px "mites"."""
    a = rng.normal(200, 12, (size, size, 3)).clip(0, 255).astype(np.uint8)
    boxes: list[list[int]] = []
    while len(boxes) < n:
        x, y = rng.integers(4, size - 26, 2)
        b = [int(x), int(y), int(x) + 20, int(y) + 20]
        if all(
            b[2] + 6 < o[0] or o[2] + 6 < b[0] or b[3] + 6 < o[1] or o[3] + 6 < b[1] for o in boxes
        ):
            boxes.append(b)
            a[y + 2 : y + 18, x + 2 : x + 18] = (90, 40, 20)
            a[y : y + 20, x + 5 : x + 15] = (90, 40, 20)
    return a, np.asarray(boxes, np.float32)


def bright_model(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Stand-in: one class-0 box around the bright pixels, score 0.8."""
    out = []
    for t in images:
        ys, xs = torch.nonzero(t.mean(0) > 0.6, as_tuple=True)
        n = int(ys.numel() > 0)
        box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if n else []
        out.append(
            {
                "boxes": torch.tensor(box, dtype=torch.float32).reshape(n, 4),
                "labels": torch.zeros(n, dtype=torch.int64),
                "scores": torch.full((n,), 0.8),
            }
        )
    return out


def photo(path: Path, box: tuple[int, int, int, int], size: tuple[int, int] = (80, 60)) -> Path:
    """A dark photo with one bright box, saved at ``path`` (folders created)."""
    a = np.full((size[1], size[0], 3), 30, np.uint8)
    x0, y0, x1, y1 = box
    a[y0:y1, x0:x1] = 250
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def tiny_checkpoint(path: Path) -> Path:
    """A randomly initialised small RetinaNet saved as a training checkpoint."""
    from yolo2retina.model import build_args, build_retinanet

    torch.manual_seed(0)
    model = build_retinanet(
        num_classes=2,
        backbone="resnet18_fpn",
        min_size=64,
        max_size=64,
        score_threshold=0.0,
        detections_per_img=5,
    )
    torch.save(
        {
            "model": model.state_dict(),
            "model_args": build_args(model),
            "class_names": NAMES,
            "meta": {
                "train_image_size": 64,
                "box_size_px": {"median": 8.0, "p10": 6.0, "p90": 10.0},
            },
        },
        path,
    )
    return path


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def spread_checkpoint(path: Path) -> Path:
    """A 2-class resnet18-FPN checkpoint (128 px) whose heads give well-spread scores."""
    from yolo2retina.model import build_args, build_retinanet

    torch.manual_seed(0)
    model = build_retinanet(num_classes=2, backbone="resnet18_fpn", min_size=128, max_size=128)
    with torch.no_grad():
        model.head.classification_head.cls_logits.weight.normal_(0.0, 0.05)
        model.head.classification_head.cls_logits.bias.fill_(-2.0)
        model.head.regression_head.bbox_reg.weight.normal_(0.0, 0.02)
    meta: dict[str, object] = {
        "train_image_size": 128,
        "box_size_px": {"median": 20.0, "p10": 16.0, "p90": 24.0},
        "score_threshold": {"score": 0.141, "f1": 0.5, "precision": 0.5, "recall": 0.5, "iou": 0.5},
    }
    ckpt = {"model_args": build_args(model), "class_names": ["varroa", "bee"], "meta": meta}
    torch.save({"model": model.state_dict(), **ckpt}, path)
    return path


def spy_model_threads(monkeypatch: object) -> list[int]:
    """Make every ``Predictor.from_checkpoint`` model record torch's thread count at each
    call; returns the list it appends to."""
    from yolo2retina.predictor import Predictor

    seen: list[int] = []
    real = Predictor.from_checkpoint

    def spy(path: object, **kw: object) -> Predictor:
        p = real(path, **kw)  # type: ignore[arg-type]
        inner = p.model

        def model(images: object) -> object:
            seen.append(torch.get_num_threads())
            return inner(images)

        p.model = model  # type: ignore[assignment]
        return p

    monkeypatch.setattr(Predictor, "from_checkpoint", spy)  # type: ignore[attr-defined]
    return seen
