"""Standard COCO folder layouts: the images folder is found from the layout (issue 13 item 2).

Each test builds its fixture tree under tmp_path; docs/formats/coco.md shows the same trees.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_image
from tests.formats._helpers import coco_dict
from yolo2retina.cli import main
from yolo2retina.dataset import CocoDataset
from yolo2retina.errors import DatasetError
from yolo2retina.formats import detect_format, get_format, load_annotations, load_splits
from yolo2retina.formats.coco import read_coco


def _coco(json_path: Path, image_dir: Path, stems: list[str], prefix: str = "") -> Path:
    """Images ``image_dir/{stem}.jpg`` and a JSON whose file_name is ``prefix + stem.jpg``."""
    imgs, anns = [], []
    for i, stem in enumerate(stems, 1):
        write_image(image_dir / f"{stem}.jpg", (64, 48))
        imgs.append({"id": i, "file_name": f"{prefix}{stem}.jpg", "width": 64, "height": 48})
        anns.append({"id": i, "image_id": i, "category_id": 1, "bbox": [2, 3, 10, 20]})
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(coco_dict(imgs, anns)))
    return json_path


def _non_detection_files(folder: Path, token: str) -> None:
    """Captions, keypoints and panoptic files as COCO ships them beside instances files."""
    (folder / f"captions_{token}.json").write_text(
        json.dumps({"images": [], "annotations": [{"id": 1, "image_id": 1, "caption": "x"}]})
    )
    (folder / f"person_keypoints_{token}.json").write_text(json.dumps(coco_dict([], [])))
    (folder / f"panoptic_{token}.json").write_text(
        json.dumps({"images": [], "annotations": [{"image_id": 1, "segments_info": []}]})
    )


@pytest.fixture
def split_named(tmp_path: Path) -> Path:
    """annotations/instances_{split}.json + images/{split}/."""
    root = tmp_path / "ds"
    _coco(root / "annotations" / "instances_train.json", root / "images" / "train", ["a", "b"])
    _coco(root / "annotations" / "instances_val.json", root / "images" / "val", ["c"])
    return root


@pytest.fixture
def coco2017(tmp_path: Path) -> Path:
    """annotations/instances_{train,val}2017.json + train2017/ + val2017/, with captions,
    keypoints and panoptic files in annotations/ as the COCO download has them."""
    root = tmp_path / "coco"
    _coco(root / "annotations" / "instances_train2017.json", root / "train2017", ["a", "b"])
    _coco(root / "annotations" / "instances_val2017.json", root / "val2017", ["c"])
    for token in ("train2017", "val2017"):
        _non_detection_files(root / "annotations", token)
    return root


def test_split_named_layout_finds_images_by_split(split_named: Path) -> None:
    """images/{split}/ beside annotations/ is the images root; 'valid' finds instances_val."""
    assert detect_format(split_named) == "coco"
    assert get_format("coco").splits(split_named) == ("train", "val")
    val = load_annotations(split_named, split="valid")
    assert [Path(p).name for p in val.paths] == ["c.jpg"]
    assert Path(str(val.paths[0])).parent == (split_named / "images" / "val").resolve()
    assert any("images are read from" in d for d in val.report.details)
    assert len(CocoDataset(split_named, split="train")) == 2


def test_coco2017_layout_reads_instances_and_skips_the_others(coco2017: Path) -> None:
    """train2017/ beside annotations/ is found; captions, keypoints and panoptic are skipped,
    counted and named, never read as a split."""
    assert get_format("coco").splits(coco2017) == ("train2017", "val2017")
    val = load_annotations(coco2017, split="val")  # 'val' finds instances_val2017.json
    assert [Path(p).name for p in val.paths] == ["c.jpg"]
    assert Path(str(val.paths[0])).parent == (coco2017 / "val2017").resolve()
    assert val.report.skipped_files == 3
    skipped = [d for d in val.report.details if "skipped" in d]
    assert {Path(d.split(":")[0]).name for d in skipped} == {
        "captions_val2017.json",
        "person_keypoints_val2017.json",
        "panoptic_val2017.json",
    }
    data = load_splits(coco2017)
    assert sorted(data) == ["train2017", "val2017"] and len(data["train2017"]) == 2


def test_mmdetection_variants(tmp_path: Path) -> None:
    """mmdetection's variants: annotations/{split}.json with one images/ folder, and a
    file_name that carries its folder (train2017/a.jpg) relative to the dataset root."""
    root = tmp_path / "mm"
    _coco(root / "annotations" / "train.json", root / "images", ["a", "b"])
    _coco(root / "annotations" / "val.json", root / "images", ["c"])
    assert get_format("coco").splits(root) == ("train", "val")
    assert len(load_annotations(root, split="train")) == 2
    root2 = tmp_path / "mm2"
    _coco(root2 / "annotations" / "instances_val2017.json", root2 / "val2017", ["c"], "val2017/")
    ann = load_annotations(root2, split="val")
    assert Path(str(ann.paths[0])) == (root2 / "val2017" / "c.jpg").resolve()
    assert len(load_annotations(root2)) == 1  # split=None: the folder's only split
    for r in (root, root2):  # check and stats need no flag
        assert main(["check", str(r), "--no-progress"]) == 0
        assert main(["stats", str(r), "--no-histogram"]) == 0


def test_several_split_files_in_one_folder(tmp_path: Path) -> None:
    """{split}.json files side by side, each a split; the images beside them."""
    _coco(tmp_path / "train.json", tmp_path, ["a"])
    _coco(tmp_path / "val.json", tmp_path, ["b"])
    assert get_format("coco").splits(tmp_path) == ("train", "val")
    assert sorted(load_splits(tmp_path)) == ["train", "val"]


def test_a_json_beside_its_images_keeps_its_folder(tmp_path: Path) -> None:
    """Roboflow / CVAT: the images beside the JSON stay the root, with no note."""
    f = _coco(tmp_path / "train" / "_annotations.coco.json", tmp_path / "train", ["a"])
    ann = read_coco(f)
    assert Path(str(ann.paths[0])).parent == (tmp_path / "train").resolve()
    assert not ann.report.details


def test_explicit_images_root_wins(split_named: Path, tmp_path: Path) -> None:
    """images_root= replaces the layout's choice (and is refused when the files are not there)."""
    other = tmp_path / "elsewhere"
    write_image(other / "c.jpg", (64, 48))
    ann = load_annotations(split_named, split="val", images_root=other)
    assert Path(str(ann.paths[0])) == (other / "c.jpg").resolve()
    with pytest.raises(DatasetError):
        load_annotations(split_named, split="train", images_root=other)


@pytest.mark.parametrize("how", ["relative", "dot", "absolute", "symlink"])
def test_layouts_load_the_same_however_the_path_is_written(
    coco2017: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Relative, '.', absolute and symlinked roots give the same image paths."""
    expected = [str(p) for p in load_annotations(coco2017, split="val").paths]
    if how == "relative":
        monkeypatch.chdir(coco2017.parent)
        src: Path = Path(coco2017.name)
    elif how == "dot":
        monkeypatch.chdir(coco2017)
        src = Path(".")
    elif how == "symlink":
        src = coco2017.parent / "link"
        src.symlink_to(coco2017, target_is_directory=True)
    else:
        src = coco2017
    assert [str(p) for p in load_annotations(src, split="val").paths] == expected


@pytest.mark.parametrize("layout", ["split_named", "coco2017"])
def test_check_and_stats_load_the_layouts_with_no_flags(
    request: pytest.FixtureRequest,
    layout: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """yolo2retina check and stats read every split of each layout without --images-root."""
    root: Path = request.getfixturevalue(layout)
    assert main(["check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "no errors" in out and out.count("images are read from") == 2
    assert main(["stats", str(root), "--no-histogram"]) == 0
    assert "== all splits" in capsys.readouterr().out


def test_images_root_flag_on_every_command_that_reads_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--images-root lets check, stats, info, convert and split read a JSON whose images lie
    elsewhere; without it they fail naming the missing image."""
    f = _coco(tmp_path / "json" / "ann.json", tmp_path / "pics", ["a", "b"])
    pics = str(tmp_path / "pics")
    assert main(["check", str(f)]) == 1
    assert "a.jpg" in capsys.readouterr().out
    runs = [
        ["check", str(f), "--images-root", pics],
        ["stats", str(f), "--no-histogram", "--images-root", pics],
        ["info", str(f), "--images-root", pics],
        ["convert", str(f), str(tmp_path / "o"), "--to", "yolo", "--images-root", pics],
        ["split", str(f), "--out", str(tmp_path / "s"), "--images-root", pics],
    ]
    for argv in runs:
        assert main(argv) == 0, (argv, capsys.readouterr())
    capsys.readouterr()
    assert (tmp_path / "o" / "images" / "train" / "a.jpg").is_file()


def test_evaluate_takes_images_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """evaluate parses --images-root and reads the dataset with it (the checkpoint comes after)."""
    f = _coco(tmp_path / "json" / "ann.json", tmp_path / "pics", ["a"])
    argv = ["evaluate", "--data", str(f), "--weights", str(tmp_path / "none.pt"), "--split", "x"]
    assert main([*argv, "--images-root", str(tmp_path / "pics")]) == 1
    err = capsys.readouterr().err
    assert "none.pt" in err and "a.jpg" not in err  # the data loaded; the missing checkpoint
    assert main(argv) == 1
    assert "a.jpg" in capsys.readouterr().err  # without the flag: the image is not found


def test_images_root_is_refused_for_yolo_and_voc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--images-root on a YOLO dataset is an error that says it is for COCO, not ignored."""
    from tests.conftest import make_yolo_dataset

    y = make_yolo_dataset(tmp_path / "y", {"a": ["0 0.5 0.5 0.2 0.2"]})
    assert main(["check", str(y), "--images-root", str(tmp_path)]) == 1
    assert "--images-root applies to COCO" in capsys.readouterr().err
