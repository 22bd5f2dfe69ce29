"""The light import: the annotations layer never imports torch; the rest loads on first use.

Each check runs a fresh interpreter (``sys.modules`` of the pytest process already holds
torch) and reads ``sys.modules`` there.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import yolo2retina

from .conftest import make_yolo_dataset, write_image

#: Printed by every probe script: which of the heavy packages are loaded at that point.
_PROBE = """
import sys
def heavy():
    return sorted({m.split(".")[0] for m in sys.modules} & {"torch", "torchvision"})
"""


def _run(script: str, cwd: Path) -> list[str]:
    """Run ``script`` in a fresh interpreter in ``cwd``; its stdout lines."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE + textwrap.dedent(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _tiny_datasets(root: Path) -> None:
    """A YOLO dataset ``yolo/`` and a COCO file ``coco/ann.json`` under ``root``."""
    make_yolo_dataset(root / "yolo", {"a": ["0 0.5 0.5 0.25 0.5"], "b": ["1 0.25 0.25 0.1 0.1"]})
    write_image(root / "coco" / "x.jpg", (64, 48))
    coco = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "mite"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 5, 20, 10]}],
    }
    (root / "coco" / "ann.json").write_text(json.dumps(coco))


def test_import_loads_no_torch(tmp_path: Path) -> None:
    """``import yolo2retina`` imports neither torch nor torchvision (it used to import both)."""
    out = _run("import yolo2retina\nprint(heavy())", tmp_path)
    assert out == ["[]"]


def test_reading_writing_checking_and_scoring_annotations_loads_no_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The formats and annotations layer, end to end, with relative paths, stays torch-free.

    Before the light import, image.py imported torch for ``image_to_tensor``, and every
    format reader imports image.py for image sizes.
    """
    monkeypatch.chdir(tmp_path)
    _tiny_datasets(tmp_path)
    out = _run(
        """
        import numpy as np
        import yolo2retina
        from yolo2retina import Target, coco_map, fit_anchors, load_annotations, write_annotations
        from yolo2retina.convert import check_dataset, convert_dataset
        from yolo2retina.stats import dataset_stats

        yolo = load_annotations("yolo/data.yaml", split="train")
        coco = load_annotations("coco/ann.json")
        write_annotations(yolo, "voc", "voc")
        voc = load_annotations("voc")
        convert_dataset("yolo/data.yaml", "as_coco", "coco")
        check_dataset("yolo/data.yaml")
        dataset_stats(yolo)
        fit_anchors(yolo)
        preds = [Target(t.boxes, t.labels, scores=np.ones(len(t.labels), np.float32)) for t in coco.targets()]
        m = coco_map(coco, preds)
        print(len(yolo), len(coco), len(voc), round(m.map, 3))
        print(heavy())
        """,
        tmp_path,
    )
    assert out == ["2 1 2 1.0", "[]"]


def test_model_side_names_still_resolve_and_then_load_torch(tmp_path: Path) -> None:
    """``from yolo2retina import YoloDataset, fit, Predictor`` works as before; torch loads then."""
    out = _run(
        """
        import yolo2retina
        print(heavy())
        from yolo2retina import Predictor, YoloDataset, build_retinanet, fit
        import yolo2retina.dataset, yolo2retina.predictor, yolo2retina.train, yolo2retina.model
        print(YoloDataset is yolo2retina.dataset.YoloDataset, fit is yolo2retina.train.fit,
              Predictor is yolo2retina.predictor.Predictor,
              build_retinanet is yolo2retina.model.build_retinanet)
        print(heavy())
        """,
        tmp_path,
    )
    assert out == ["[]", "True True True True", "['torch', 'torchvision']"]


def test_data_only_cli_commands_load_no_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check``, ``stats``, ``convert``, ``formats``, ``info`` and every ``--help``.

    The CLI used to build every subcommand's options first, and ``train``'s import torch
    (for its choices, until they moved to :mod:`yolo2retina.choices`); ``info`` loaded a
    torch ``Dataset`` to print the load report of the annotations.
    """
    monkeypatch.chdir(tmp_path)
    _tiny_datasets(tmp_path)
    out = _run(
        """
        import contextlib, io
        from yolo2retina.cli import main
        runs = [["--help"], ["--version"], ["formats"], ["check", "yolo/data.yaml"],
                ["stats", "coco/ann.json"], ["convert", "yolo/data.yaml", "out", "--to", "voc"],
                ["split", "--help"], ["info", "--help"], ["evaluate", "--help"],
                ["predict", "--help"], ["train", "--help"], ["info", "yolo/data.yaml"],
                ["bogus"]]
        for argv in runs:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                rc = main(argv)
            print(argv[0], rc, heavy())
        """,
        tmp_path,
    )
    assert out == [
        "--help 0 []",
        "--version 0 []",
        "formats 0 []",
        "check 0 []",
        "stats 0 []",
        "convert 0 []",
        "split 0 []",
        "info 0 []",
        "evaluate 0 []",
        "predict 0 []",
        "train 0 []",
        "info 0 []",
        "bogus 2 []",
    ]


def test_train_config_and_the_choices_load_no_torch(tmp_path: Path) -> None:
    """The settings and their names are plain values: ``TrainConfig`` used to import the
    augmentation and loss modules (torch) for the policy and loss-norm names."""
    out = _run(
        """
        from yolo2retina.choices import BACKBONES
        from yolo2retina.train_config import SCRATCH_MODEL, TrainConfig
        print(TrainConfig(augment="light").augment, SCRATCH_MODEL["backbone"] in BACKBONES)
        print(heavy())
        """,
        tmp_path,
    )
    assert out == ["light True", "[]"]


def test_cli_options_of_the_command_run_are_all_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main`` builds only the options of its command: those are complete, usage errors too."""
    from yolo2retina.cli import get_parser, main

    monkeypatch.chdir(tmp_path)
    parser = get_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, full in sub.choices.items():  # type: ignore[union-attr]
        assert main([name, "--help"]) == 0
        assert capsys.readouterr().out == full.format_help(), name
    assert main(["check"]) == 2  # the missing dataset is still a usage error
    err = capsys.readouterr().err
    assert "the following arguments are required" in err and "yolo2retina check" in err


def test_every_public_name_resolves_and_is_listed() -> None:
    """Every name of ``__all__`` resolves to the object of its defining module; dir lists it."""
    listed = dir(yolo2retina)
    for name in yolo2retina.__all__:
        assert name in listed, name
        obj = getattr(yolo2retina, name)
        if name == "__version__":
            assert isinstance(obj, str)
            continue
        home = importlib.import_module(obj.__module__)
        assert getattr(home, obj.__name__) is obj, name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        yolo2retina.nope  # noqa: B018
    assert not hasattr(yolo2retina, "nope")


def test_star_import_gives_every_public_name(tmp_path: Path) -> None:
    """``from yolo2retina import *`` binds all of ``__all__`` (it goes through ``__getattr__``)."""
    out = _run(
        """
        from yolo2retina import *
        import yolo2retina
        print(all(globals()[n] is getattr(yolo2retina, n) for n in yolo2retina.__all__))
        """,
        tmp_path,
    )
    assert out == ["True"]


def test_type_checking_imports_match_the_lazy_table() -> None:
    """What mypy and IDEs see (the ``TYPE_CHECKING`` imports) is what ``__getattr__`` loads."""
    tree = ast.parse(inspect.getsource(yolo2retina))
    block = next(
        s for s in tree.body if isinstance(s, ast.If) and ast.unparse(s.test) == "TYPE_CHECKING"
    )
    seen = {
        alias.name: str(stmt.module)
        for stmt in block.body
        if isinstance(stmt, ast.ImportFrom)
        for alias in stmt.names
    }
    assert seen == yolo2retina._LAZY
    assert set(seen) == set(yolo2retina.__all__) - {"__version__"}
