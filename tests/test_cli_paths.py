"""Every CLI command gives the same result for a relative path, an absolute path, a path
through a symlink and `.` (issue 11, item 1), over YOLO, VOC and COCO datasets.

Before, a YOLO data.yaml without a `path:` key read through a relative path reported every
label file as "label file has no image"; every earlier test used absolute tmp paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.conftest import write_image, write_labels
from tests.formats._helpers import make_coco, make_voc
from yolo2retina.cli import main
from yolo2retina.formats import load_splits

NAMES = ["a", "b"]
VARIANTS = ["absolute", "relative", "symlink", "dot"]


def yolo_ds(root: Path) -> str:
    """Ultralytics layout whose data.yaml has no `path:` key; one clipped box per split."""
    for split in ("train", "val"):
        write_image(root / "images" / split / "a.jpg")
        write_image(root / "images" / split / "b.jpg")
        write_labels(root / "labels" / split / "a.txt", ["0 0.5 0.5 0.2 0.2", "1 0.9 0.5 0.21 0.2"])
        write_labels(root / "labels" / split / "b.txt", "")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    return "data.yaml"


def voc_ds(root: Path) -> str:
    """A VOC folder with train/val image sets, a background image and one clipped box."""
    make_voc(
        root,
        {
            "a": [{"name": "a", "box": (10, 10, 30, 30)}, {"name": "b", "box": (40, 5, 64.5, 20)}],
            "b": [],
            "c": [{"name": "b", "box": (1, 1, 9, 9)}],
        },
        splits={"train": ["a", "b"], "val": ["c"]},
    )
    (root / "classes.txt").write_text("a\nb\n")
    return ""


def coco_ds(root: Path) -> str:
    """Roboflow COCO layout (one JSON per split folder), one clipped box."""
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [60, 1, 4.5, 4], "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [1, 1, 10, 10], "iscrowd": 0},
    ]
    for split in ("train", "valid"):
        make_coco(root / split, 3, anns, name="_annotations.coco.json")
    return ""


DATASETS: dict[str, tuple[Callable[[Path], str], str]] = {
    "yolo": (yolo_ds, "coco"),
    "voc": (voc_ds, "yolo"),
    "coco": (coco_ds, "yolo"),
}


def spelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str, inner: str) -> str:
    """The dataset at tmp_path/ds (``inner`` below it) spelled as ``variant``.

    ``relative`` and ``dot`` change the working directory (to tmp_path and to the dataset).
    """
    ds = tmp_path / "ds"
    if variant == "absolute":
        return str(ds / inner) if inner else str(ds)
    if variant == "relative":
        monkeypatch.chdir(tmp_path)
        return os.path.join("ds", inner) if inner else "ds"
    if variant == "symlink":
        link = tmp_path / "link"
        if not link.is_symlink():
            link.symlink_to(ds, target_is_directory=True)
        return str(link / inner) if inner else str(link)
    monkeypatch.chdir(ds)
    return inner or "."


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def normalized(text: str, **paths: str) -> str:
    """``text`` with each given path (longest first) replaced by ``<name>``."""
    for name, path in sorted(paths.items(), key=lambda kv: -len(kv[1])):
        text = text.replace(path, f"<{name}>")
    return text


def results(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    command: Callable[[str, Path], list[str]],
) -> dict[str, tuple[int, str, str]]:
    """Run ``command(dataset argument, output path)`` once per path variant."""
    make, _ = DATASETS[fmt]
    inner = make(tmp_path / "ds")
    out: dict[str, tuple[int, str, str]] = {}
    for variant in VARIANTS:
        with monkeypatch.context() as m:
            arg = spelled(tmp_path, m, variant, inner)
            dst = tmp_path / "outputs" / variant
            rc, stdout, stderr = run(command(arg, dst), capsys)
        header = f"{arg} ({fmt})"  # check/convert name the source as it was given
        stdout = "\n".join("<src>" if ln == header else ln for ln in stdout.splitlines())
        stderr = "\n".join(ln for ln in stderr.splitlines() if "\r" not in ln)  # progress bars
        out[variant] = (rc, normalized(stdout, dst=str(dst)), normalized(stderr, dst=str(dst)))
    return out


def assert_all_same(got: dict[str, tuple[int, str, str]]) -> None:
    first = got["absolute"]
    assert first[0] == 0, first
    for variant, value in got.items():
        assert value == first, f"{variant} differs from absolute:\n{value}\n---\n{first}"


@pytest.mark.parametrize("fmt", list(DATASETS))
def test_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """check: same notes (real paths), same table, exit 0, for every spelling."""
    got = results(
        tmp_path, monkeypatch, capsys, fmt, lambda src, _: ["check", src, "--no-progress"]
    )
    assert_all_same(got)
    assert "clipped" in got["absolute"][1] and "no errors" in got["absolute"][1]


@pytest.mark.parametrize("fmt", list(DATASETS))
def test_stats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """stats: the same numbers for every spelling (histogram outside the dataset)."""
    got = results(
        tmp_path,
        monkeypatch,
        capsys,
        fmt,
        lambda src, dst: ["stats", src, "--histogram", str(dst.with_suffix(".png"))],
    )
    assert_all_same(got)
    assert "== all splits" in got["absolute"][1]


@pytest.mark.parametrize("fmt", list(DATASETS))
def test_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """info on the train split: the same load report for every spelling (source line aside)."""
    got = results(
        tmp_path, monkeypatch, capsys, fmt, lambda src, _: ["info", src, "--split", "train"]
    )
    for variant, (rc, text, err) in got.items():
        got[variant] = (rc, "\n".join(text.splitlines()[1:]), err)  # 'Loaded <as given>'
    assert_all_same(got)


@pytest.mark.parametrize("fmt", list(DATASETS))
def test_convert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """convert: the same report, and the same dataset written, for every spelling."""
    to = DATASETS[fmt][1]
    got = results(
        tmp_path,
        monkeypatch,
        capsys,
        fmt,
        lambda src, dst: ["convert", src, str(dst), "--to", to, "--no-progress"],
    )
    assert_all_same(got)
    written = {}
    for variant in VARIANTS:
        dst = tmp_path / "outputs" / variant
        files = sorted(str(p.relative_to(dst)) for p in dst.rglob("*"))
        splits = load_splits(dst, to)
        written[variant] = (
            files,
            {s: (len(a), a.num_boxes, a.boxes.tolist()) for s, a in splits.items()},
        )
    assert all(w == written["absolute"] for w in written.values())


# -- evaluate and predict, with an untrained 64-px model -------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised resnet18 RetinaNet for classes a, b at 64 px."""
    from yolo2retina.model import build_args, build_retinanet

    torch.manual_seed(0)
    model = build_retinanet(
        num_classes=2, backbone="resnet18_fpn", min_size=64, max_size=64, detections_per_img=5
    )
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.save(
        {"model": model.state_dict(), "model_args": build_args(model), "class_names": NAMES}, path
    )
    return path


@pytest.mark.parametrize("fmt", list(DATASETS))
def test_evaluate(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    checkpoint: Path,
    fmt: str,
) -> None:
    """evaluate: the same metrics for every spelling of --data."""
    got = results(
        tmp_path,
        monkeypatch,
        capsys,
        fmt,
        lambda src, dst: [
            "evaluate",
            "--data",
            src,
            "--weights",
            str(checkpoint),
            "--split",
            "train",
            "--out",
            str(dst),
            "--no-plots",
            "--quiet",
        ],
    )
    assert_all_same(got)
    assert "Average Precision" in got["absolute"][1]


def test_predict(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    checkpoint: Path,
) -> None:
    """predict: the same counts for every spelling of --source (a folder of images)."""
    for name in ("a", "b"):
        write_image(tmp_path / "ds" / f"{name}.jpg")
    got = {}
    for variant in VARIANTS:
        with monkeypatch.context() as m:
            src = spelled(tmp_path, m, variant, "")
            dst = tmp_path / "outputs" / variant
            argv = ["predict", "--weights", str(checkpoint), "--source", src, "--out", str(dst)]
            rc, out, err = run([*argv, "--no-progress", "--score", "0"], capsys)
        got[variant] = (rc, normalized(out, dst=str(dst)), err)
        assert (dst / "a.png").is_file() and (dst / "counts.csv").is_file()
    assert_all_same(got)
