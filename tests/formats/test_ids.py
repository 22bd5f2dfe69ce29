"""COCO category ids and image ids survive conversions, or are listed as lost (issue 13 item 5)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tests.conftest import write_image
from tests.formats._helpers import coco_dict
from yolo2retina.annotations import Annotations
from yolo2retina.cli import main
from yolo2retina.dataset import CocoDataset, DetectionDataset
from yolo2retina.formats import (
    detect_format,
    load_annotations,
    load_splits,
    write_annotations,
)
from yolo2retina.formats._common import IDS_FILE


def _coco(folder: Path, cats: list[tuple[int, str]], image_ids: list[int]) -> Path:
    """A COCO JSON with the given category ids and image ids (in this record order)."""
    imgs, anns = [], []
    for k, iid in enumerate(image_ids):
        write_image(folder / f"im{k}.jpg", (64, 48))
        imgs.append({"id": iid, "file_name": f"im{k}.jpg", "width": 64, "height": 48})
        cat = cats[k % len(cats)][0]
        anns.append({"id": k, "image_id": iid, "category_id": cat, "bbox": [2, 3, 10, 20]})
    f = folder / "_annotations.coco.json"
    f.write_text(json.dumps(coco_dict(imgs, anns, cats)))
    return f


@pytest.mark.parametrize(
    "cats",
    [[(0, "proj"), (1, "a"), (2, "b")], [(5, "a"), (7, "b")], [(1, "a"), (2, "b")]],
    ids=["zero-based", "gappy", "one-based"],
)
def test_coco_yolo_coco_keeps_category_and_image_ids(
    tmp_path: Path, cats: list[tuple[int, str]]
) -> None:
    """COCO -> YOLO -> COCO gives the same category ids and image ids (a sidecar file holds
    them), and the YOLO writer loses nothing."""
    src = _coco(tmp_path / "src" / "train", cats, [40, 7, 12])
    a = load_annotations(src)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 'lost' warning
        report = write_annotations(a, tmp_path / "yolo", "yolo")
    assert report.lost == [] and str(tmp_path / "yolo" / IDS_FILE) in report.files
    assert detect_format(tmp_path / "yolo") == "yolo"  # the sidecar is not a COCO file
    y = load_annotations(tmp_path / "yolo", split="train")
    assert y.category_ids == a.category_ids

    def ids(ann: Annotations) -> dict[str, int]:
        return {Path(str(p)).name: int(i) for p, i in zip(ann.paths, ann.image_ids, strict=True)}

    assert ids(y) == ids(a)
    write_annotations(y, tmp_path / "back", "coco")
    back = json.loads((tmp_path / "back" / "train" / "_annotations.coco.json").read_text())
    orig = json.loads(src.read_text())
    assert [c["id"] for c in back["categories"]] == [c for c, _ in cats]
    assert {i["file_name"]: i["id"] for i in back["images"]} == {
        i["file_name"]: i["id"] for i in orig["images"]
    }
    pairs = {(a_["image_id"], a_["category_id"]) for a_ in back["annotations"]}
    assert pairs == {(a_["image_id"], a_["category_id"]) for a_ in orig["annotations"]}


def test_a_plain_yolo_source_writes_no_sidecar(tmp_path: Path) -> None:
    """Without ids to keep (a YOLO or VOC source), YOLO output has no extra file."""
    from tests.conftest import make_yolo_dataset

    y = make_yolo_dataset(tmp_path / "y", {"a": ["0 0.5 0.5 0.2 0.2"], "b": []})
    write_annotations(load_splits(y, splits=["train"]), tmp_path / "out", "yolo")
    assert not (tmp_path / "out" / IDS_FILE).exists()


def test_sidecar_that_misses_images_is_not_used_and_says_so(tmp_path: Path) -> None:
    """Images added after conversion: the image ids are not applied, with a note; category
    ids still are."""
    write_annotations(
        load_annotations(_coco(tmp_path / "src", [(5, "a"), (7, "b")], [40, 7])),
        tmp_path / "yolo",
        "yolo",
    )
    write_image(tmp_path / "yolo" / "images" / "train" / "new.jpg", (64, 48))
    y = load_annotations(tmp_path / "yolo", split="train")
    assert y.image_ids.tolist() == [0, 1, 2] and y.category_ids == (5, 7)
    assert any("image ids not used" in d for d in y.report.details)


def test_bad_sidecar_is_an_error_naming_it(tmp_path: Path) -> None:
    write_annotations(
        load_annotations(_coco(tmp_path / "src", [(5, "a"), (7, "b")], [40, 7])),
        tmp_path / "yolo",
        "yolo",
    )
    (tmp_path / "yolo" / IDS_FILE).write_text('{"category_ids": [1, 1]}')
    from yolo2retina.errors import DatasetError

    with pytest.raises(DatasetError, match=IDS_FILE.replace(".", r"\.")):
        load_annotations(tmp_path / "yolo", split="train")


def test_voc_writer_lists_the_ids_it_loses_and_convert_prints_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """VOC cannot hold ids: the writer's report lists the category ids and image ids, and
    convert prints them."""
    src = _coco(tmp_path / "src" / "train", [(0, "proj"), (1, "a")], [40, 7])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = write_annotations(load_annotations(src), tmp_path / "voc", "voc")
    assert any("lost COCO category ids" in str(w.message) for w in caught)
    assert any("[0, 1]" in line for line in report.lost)
    assert any("2 image ids (40, 7)" in line for line in report.lost)
    assert main(["convert", str(src), str(tmp_path / "voc2"), "--to", "voc", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "lost: COCO category ids [0, 1]" in out and "lost: train: 2 image ids (40, 7)" in out


def test_dataset_offers_the_source_image_id(tmp_path: Path) -> None:
    """target['source_image_id'] is the COCO id; image_id='source' puts it in target['image_id']."""
    src = _coco(tmp_path / "src", [(1, "a")], [40, 7])
    plain = CocoDataset(src)
    assert [plain[i][1]["image_id"] for i in range(2)] == [0, 1]
    assert [plain[i][1]["source_image_id"] for i in range(2)] == [40, 7]
    coco_ids = DetectionDataset.from_path(src, image_id="source")
    assert [coco_ids[i][1]["image_id"] for i in range(2)] == [40, 7]
    from yolo2retina.errors import ConfigError

    with pytest.raises(ConfigError, match="image_id must be"):
        CocoDataset(src, image_id="coco")  # type: ignore[arg-type]


def test_source_image_ids_work_with_pycocotools_load_res(tmp_path: Path) -> None:
    """Results keyed by target['image_id'] with image_id='source' load into pycocotools."""
    pytest.importorskip("pycocotools")
    import contextlib
    import io

    from pycocotools.coco import COCO

    src = _coco(tmp_path / "src", [(1, "a")], [40, 7])
    ds = CocoDataset(src, image_id="source")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(src))
        res = gt.loadRes(
            [
                {
                    "image_id": ds[i][1]["image_id"],
                    "category_id": 1,
                    "bbox": [2, 3, 10, 20],
                    "score": 0.9,
                }
                for i in range(len(ds))
            ]
        )
    assert sorted(res.getImgIds()) == [7, 40]
