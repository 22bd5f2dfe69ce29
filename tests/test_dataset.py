"""Tests for DetectionDataset / YoloDataset / collate (yolo2retina/dataset.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from tests.conftest import make_yolo_dataset, write_image, write_labels
from yolo2retina import YoloDataset, collate
from yolo2retina.errors import (
    AnnotationError,
    ConfigError,
    DatasetError,
    FormatNotFoundError,
    ImageReadError,
    NonFiniteLossError,
)


@pytest.fixture
def yaml_path(tmp_path: Path) -> Path:
    """A 4-image dataset at 64x48 with two classes and one background image."""
    return make_yolo_dataset(
        tmp_path,
        {
            "a": ["0 0.25 0.5 0.25 0.5", "1 0.75 0.25 0.25 0.25"],
            "b": ["1 0.5 0.5 0.5 0.5"],
            "c": "",
            "d": ["0 0.5 0.5 0.1 0.2"],
        },
    )


def test_sample_follows_torchvision_conventions(yaml_path: Path) -> None:
    """A sample is (tv_tensors.Image float32 in [0, 1], {boxes: BoundingBoxes XYXY, labels: int64, image_id})."""
    ds = YoloDataset(yaml_path, split="train")
    image, target = ds[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
    assert image.shape == (3, 48, 64) and 0.0 <= float(image.min()) <= float(image.max()) <= 1.0
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (
        48,
        64,
    )
    np.testing.assert_allclose(boxes.numpy(), [[8, 12, 24, 36], [40, 6, 56, 18]], atol=1e-4)
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [0, 1]
    assert target["image_id"] == 0
    _, bg = ds[2]
    assert bg["boxes"].shape == (0, 4) and bg["labels"].shape == (0,)


def test_views_do_not_decode(yaml_path: Path) -> None:
    """len, class_names, image_path, image_hw, target, num_boxes and report need no decoding."""
    ds = YoloDataset(yaml_path, split="train")
    assert len(ds) == 4 and ds.class_names == ("a", "b") and ds.num_boxes == 4
    assert ds.image_path(1).name == "b.jpg" and ds.image_hw(1) == (48, 64)
    assert ds.target(1).labels.tolist() == [1] and ds.report.background_images == 1
    assert "4 images" in repr(ds)


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "CMYK", "I;16", "LA", "1"])
def test_image_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    """RGBA, palette, grey, CMYK and 16-bit images all load as 3-channel float images."""
    img_dir = tmp_path / "images" / "train"
    img_dir.mkdir(parents=True)
    ext = "tif" if mode == "CMYK" else "png"
    Image.new("RGB", (20, 10), (120, 60, 30)).convert(mode).save(img_dir / f"a.{ext}")
    write_labels(tmp_path / "labels" / "train" / "a.txt", ["0 0.5 0.5 0.5 0.5"])
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [x]\n")
    image, _ = YoloDataset(tmp_path / "data.yaml")[0]
    assert image.shape == (3, 10, 20) and image.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_flip_and_resize_move_boxes_exactly(yaml_path: Path) -> None:
    """RandomHorizontalFlip(p=1) + Resize moves boxes to the hand-computed coordinates."""
    tf = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((96, 128))])
    image, target = YoloDataset(yaml_path, transforms=tf)[0]
    assert image.shape == (3, 96, 128)
    # original 64x48: box [8, 12, 24, 36] flips to [40, 12, 56, 36], then scales x2
    expected = np.array([[80, 24, 112, 72], [16, 12, 48, 36]], dtype=np.float32)
    np.testing.assert_allclose(target["boxes"].numpy(), expected, atol=1e-4)
    assert tuple(target["boxes"].canvas_size) == (96, 128)


def test_common_v2_pipeline_runs_unchanged(yaml_path: Path) -> None:
    """A typical detection augmentation pipeline (IoU crop, sanitize) runs on our samples."""
    torch.manual_seed(0)
    tf = v2.Compose(
        [
            v2.RandomPhotometricDistort(p=1.0),
            v2.RandomZoomOut(fill=0.0, side_range=(1.0, 2.0)),
            v2.RandomIoUCrop(),
            v2.Resize((64, 64)),
            v2.SanitizeBoundingBoxes(),
        ]
    )
    ds = YoloDataset(yaml_path, transforms=tf)
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape[-2:] == (64, 64)
        assert target["boxes"].shape[0] == target["labels"].shape[0]


def test_retinanet_trains_on_a_dataloader_batch(yaml_path: Path) -> None:
    """torchvision's RetinaNet takes a batch from DataLoader(num_workers=2, collate) and gives
    finite losses (a resnet18-FPN RetinaNet at 64 px: the collate path, not the backbone, is
    under test)."""
    from torchvision.models.detection import RetinaNet

    from yolo2retina.model import build_retinanet

    torch.manual_seed(0)
    ds = YoloDataset(yaml_path)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    model = build_retinanet(num_classes=2, backbone="resnet18_fpn", min_size=64, max_size=64)
    assert isinstance(model, RetinaNet)
    model.train()
    seen = 0
    for images, targets in loader:
        assert isinstance(images, list) and isinstance(targets, list) and len(images) == 2
        losses = model(images, targets)
        assert set(losses) == {"classification", "bbox_regression"}
        assert all(torch.isfinite(v) for v in losses.values())
        seen += len(images)
        break
    assert seen == 2


def test_dataset_with_real_varroa_export(varroa_yaml: Path) -> None:
    """The real export yields 1024x1024 samples whose boxes match the annotations."""
    ds = YoloDataset(varroa_yaml, split="val")
    image, target = ds[0]
    assert image.shape == (3, *ds.image_hw(0))
    np.testing.assert_allclose(target["boxes"].numpy(), ds.target(0).boxes)


# -- library errors raised inside DataLoader workers ------------------------------------------


def test_unreadable_image_in_a_worker_names_the_file_and_the_reason(
    yaml_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that breaks after loading (truncated JPEG) re-raises in the main process as
    ImageReadError with the worker's message: the path and the reason, not only
    "Caught ImageReadError in DataLoader worker process 0"."""
    monkeypatch.chdir(yaml_path.parent)
    ds = YoloDataset("data.yaml", split="train")
    bad = ds.image_path(1)
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ImageReadError) as info:
        for _ in DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate):
            pass
    message = str(info.value)
    assert message.startswith(f"{bad}: ") and "Caught" not in message
    assert "truncated" in message or "cannot" in message
    assert info.value.worker_traceback is not None and "Traceback" in info.value.worker_traceback


class _Raises(Dataset[int]):
    """A dataset whose item 1 raises ``error`` (as a reader or a transform would)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        if i == 1:
            raise self.error
        return i


LIBRARY_ERRORS = [
    ImageReadError("images/a.jpg: cannot decode image (truncated or corrupt)"),
    AnnotationError("labels/a.txt:3", "expected 5 values, got 4"),
    DatasetError("cannot load YOLO dataset d.yaml", ["a.txt:1: bad", "b.txt:2: bad"]),
    DatasetError("cannot load YOLO dataset d.yaml"),
    NonFiniteLossError("loss is nan at batch 0", ["a.jpg", "b.jpg"]),
    ConfigError("num_classes must be a positive integer, got 0"),
    FormatNotFoundError("unknown format 'x'"),
]


@pytest.mark.parametrize("error", LIBRARY_ERRORS, ids=lambda e: type(e).__name__)
def test_library_errors_keep_type_and_message_through_a_worker(error: Exception) -> None:
    """torch re-raises a worker's exception as ``type(msg)``: every library error keeps its
    type and its own message (AnnotationError used to become a RuntimeError)."""
    with pytest.raises(type(error)) as info:
        list(DataLoader(_Raises(error), batch_size=1, num_workers=1))
    assert type(info.value) is type(error)
    assert str(info.value) == str(error)


@pytest.mark.parametrize("error", LIBRARY_ERRORS, ids=lambda e: type(e).__name__)
def test_library_errors_pickle_with_their_fields(error: Exception) -> None:
    """Errors cross process boundaries (multiprocessing, pickle) with every field."""
    import pickle

    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert vars(copy) == vars(error)
    assert copy.args == error.args


def test_annotation_error_from_one_string() -> None:
    """``AnnotationError("file:3: message")`` (how other code may rebuild it) splits at ': '."""
    e = AnnotationError("labels/a.txt:3: expected 5 values")
    assert (e.location, e.message, str(e)) == ("labels/a.txt:3", "expected 5 values", str(e))
    assert str(e) == "labels/a.txt:3: expected 5 values"


# -- one split vocabulary (issue 13 item 4) -----------------------------------------------


@pytest.mark.parametrize("split", ["val", "valid", "validation"])
def test_yolo_dataset_takes_every_val_alias(tmp_path: Path, split: str) -> None:
    """YoloDataset(split='valid') loads the yaml's 'val' split, as load_annotations does."""
    from yolo2retina.formats import load_annotations

    make_yolo_dataset(tmp_path / "train_root", {"a": ["0 0.5 0.5 0.2 0.2"]})
    y = make_yolo_dataset(tmp_path, {"b": ["1 0.5 0.5 0.2 0.2"], "c": ""}, split="val")
    y.write_text("path: .\ntrain: train_root/images/train\nval: images/val\nnames: [a, b]\n")
    ds = YoloDataset(y, split=split)
    assert len(ds) == 2 and ds.annotations.labels.tolist() == [1]
    assert len(load_annotations(y, split=split)) == 2


@pytest.mark.parametrize("split", ["val", "valid", "validation"])
def test_yolo_folder_without_yaml_takes_every_val_alias(tmp_path: Path, split: str) -> None:
    """A Roboflow-style folder (train/images, valid/images) answers to val/valid/validation."""
    for s, stem in (("train", "a"), ("valid", "b")):
        write_image(tmp_path / s / "images" / f"{stem}.jpg", (64, 48))
        write_labels(tmp_path / s / "labels" / f"{stem}.txt", ["0 0.5 0.5 0.2 0.2"])
    ds = YoloDataset(tmp_path, split=split, class_names=["a"])
    assert [p.name for p in map(ds.image_path, range(len(ds)))] == ["b.jpg"]
    assert YoloDataset(tmp_path, class_names=["a"]).image_path(0).name == "a.jpg"  # None: train


def test_every_dataset_class_has_the_same_split_default() -> None:
    """YoloDataset, VocDataset, CocoDataset and from_path all default to split=None."""
    import inspect

    from yolo2retina.dataset import CocoDataset, DetectionDataset, VocDataset

    defaults = {
        cls.__name__: inspect.signature(cls).parameters["split"].default
        for cls in (YoloDataset, VocDataset, CocoDataset)
    }
    defaults["from_path"] = (
        inspect.signature(DetectionDataset.from_path).parameters["split"].default
    )
    assert set(defaults.values()) == {None}, defaults


def test_yolo_dataset_default_split_of_a_yaml_is_train(yaml_path: Path) -> None:
    """split=None on a data.yaml (the file or its folder) means train, as before."""
    assert len(YoloDataset(yaml_path)) == len(YoloDataset(yaml_path.parent)) == 4


# -- models with a background class (issue 13 item 3) -------------------------------------


def test_label_offset_shifts_sample_labels_only(yaml_path: Path) -> None:
    """label_offset=1 gives labels 1..K in samples; annotations and class_names keep 0..K-1."""
    plain, shifted = YoloDataset(yaml_path), YoloDataset(yaml_path, label_offset=1)
    assert plain[0][1]["labels"].tolist() == [0, 1]
    assert shifted[0][1]["labels"].tolist() == [1, 2]
    assert shifted[0][1]["labels"].dtype == torch.int64
    assert shifted.annotations.labels.tolist() == plain.annotations.labels.tolist()
    assert (plain.num_model_classes, shifted.num_model_classes) == (2, 3)
    assert shifted[2][1]["labels"].shape == (0,)  # background image


@pytest.mark.parametrize("bad", [-1, 2, 1.0, True, "1"])
def test_label_offset_must_be_0_or_1(yaml_path: Path, bad: object) -> None:
    """Anything but 0 or 1 is a ConfigError naming the models, not a silent shift."""
    with pytest.raises(ConfigError, match="label_offset must be 0"):
        YoloDataset(yaml_path, label_offset=bad)  # type: ignore[arg-type]


def test_from_path_passes_label_offset_and_reader_options(tmp_path: Path) -> None:
    """from_path gives label_offset to the dataset and images_root= to the COCO reader."""
    from tests.formats._helpers import make_coco
    from yolo2retina.dataset import DetectionDataset

    f = make_coco(tmp_path / "imgs", 1)
    (tmp_path / "ann").mkdir()
    moved = f.rename(tmp_path / "ann" / "a.json")
    ds = DetectionDataset.from_path(moved, images_root=tmp_path / "imgs", label_offset=1)
    assert ds[0][1]["labels"].tolist() == [2]  # category id 2 = label 1, + 1


def test_faster_rcnn_trains_one_step_and_predicts_class_0_back(tmp_path: Path) -> None:
    """With label_offset=1, class 0 is not Faster R-CNN's background: one training step on
    64 px images runs, and every prediction minus the offset is class 0."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    y = make_yolo_dataset(
        tmp_path, {"a": ["0 0.5 0.5 0.5 0.5"], "b": ["0 0.3 0.3 0.4 0.4"]}, names=["only"]
    )
    ds = YoloDataset(y, label_offset=1, transforms=v2.Resize((64, 64)))
    assert ds.num_model_classes == 2
    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=ds.num_model_classes,
        min_size=64,
        max_size=64,
    )
    images, targets = collate([ds[0], ds[1]])
    assert all(t["labels"].tolist() == [1] for t in targets)  # class 0 -> 1, not background
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    opt.zero_grad()
    sum(losses.values()).backward()
    opt.step()
    model.eval()
    model.roi_heads.score_thresh = 0.0  # an untrained head: keep every detection
    with torch.no_grad():
        out = model(images)
    labels = torch.cat([o["labels"] for o in out])
    assert len(labels) > 0
    assert torch.unique(labels - ds.label_offset).tolist() == [0]


def test_dataset_classes_take_path_and_from_path_keywords(yaml_path: Path) -> None:
    """The file or folder parameter of every dataset class is `path` (was `source`);
    from_path's options after the path are keywords."""
    import inspect

    from yolo2retina.dataset import CocoDataset, DetectionDataset, VocDataset

    for cls in (YoloDataset, VocDataset, CocoDataset):
        assert next(iter(inspect.signature(cls).parameters)) == "path", cls
    assert len(YoloDataset(path=yaml_path, split="train")) == 4
    with pytest.raises(TypeError):
        DetectionDataset.from_path(yaml_path, "yolo")  # type: ignore[call-arg]
    assert len(DetectionDataset.from_path(yaml_path, format="yolo", split="val")) == 4
