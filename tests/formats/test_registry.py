"""Tests for the format registry, auto-detection and entry-point plug-ins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_yolo_dataset, write_image
from tests.formats._helpers import make_coco, make_voc
from yolo2retina.dataset import CocoDataset, DetectionDataset, VocDataset
from yolo2retina.errors import DatasetError, FormatNotFoundError
from yolo2retina.formats import (
    FormatAdapter,
    detect_format,
    get_format,
    list_formats,
    load_annotations,
    register_format,
    reload_plugins,
    unregister_format,
)


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Restore the registry (built-ins + installed plug-ins) after the test.

    Request it before ``monkeypatch`` so it runs after ``sys.path`` is restored.
    """
    yield
    reload_plugins()


def test_builtins_are_listed_and_satisfy_the_protocol() -> None:
    """yolo, voc and coco are registered and are FormatAdapters."""
    assert {"yolo", "voc", "coco"} <= set(list_formats())
    for name in ("yolo", "voc", "coco"):
        assert isinstance(get_format(name), FormatAdapter)


def test_unknown_format_lists_the_known_ones() -> None:
    """get_format of an unknown name raises an error listing every format."""
    with pytest.raises(FormatNotFoundError, match=r"'labelme' is not registered.*coco, voc, yolo"):
        get_format("labelme")
    with pytest.raises(KeyError):  # also a KeyError for callers who know only built-ins
        get_format("labelme")


class _Dummy:
    name = "dummy"
    description = "test format"

    def detect(self, path: Path) -> bool:
        return path.suffix == ".dummy"

    def splits(self, path: Path) -> tuple[str, ...]:
        return ()

    def read(self, path: Path, split: str | None = None, **kw: object) -> object:
        raise NotImplementedError

    def write(self, *a: object, **kw: object) -> object:
        raise NotImplementedError


def test_register_refuses_duplicates(clean_registry: None) -> None:
    """A second format of the same name is refused, also for built-in names."""
    register_format(_Dummy())  # type: ignore[arg-type]
    assert "dummy" in list_formats()
    with pytest.raises(ValueError, match="'dummy' is already registered"):
        register_format(_Dummy())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'yolo' is already registered"):
        register_format(type("Y", (_Dummy,), {"name": "yolo"})())
    unregister_format("dummy")
    assert "dummy" not in list_formats()


def test_register_refuses_non_adapters(clean_registry: None) -> None:
    """An object without the protocol's attributes is refused with what is missing."""
    with pytest.raises(TypeError, match=r"missing .*read"):
        register_format(type("Bad", (), {"name": "bad", "description": ""})())


def test_detect_each_layout(tmp_path: Path) -> None:
    """data.yaml or .txt labels -> yolo, .xml -> voc, .json -> coco."""
    y = make_yolo_dataset(tmp_path / "y", {"a": ["0 0.5 0.5 0.2 0.2"]})
    assert detect_format(y) == "yolo" and detect_format(y.parent) == "yolo"
    write_image(tmp_path / "dark" / "a.jpg")
    (tmp_path / "dark" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert detect_format(tmp_path / "dark") == "yolo"
    assert detect_format(make_voc(tmp_path / "v", {"a": []})) == "voc"
    c = make_coco(tmp_path / "c")
    assert detect_format(c) == "coco" and detect_format(c.parent) == "coco"


def test_ambiguous_and_unknown_paths_are_errors(tmp_path: Path) -> None:
    """A folder that looks like two formats, or none, is a clear error."""
    make_coco(tmp_path / "both")
    (tmp_path / "both" / "a.xml").write_text("<annotation/>")
    with pytest.raises(DatasetError, match=r"ambiguous.*coco and voc.*pass format="):
        detect_format(tmp_path / "both")
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the dataset format"):
        detect_format(tmp_path / "none")
    with pytest.raises(DatasetError, match="no such file"):
        detect_format(tmp_path / "missing")


PLUGIN = '''
import numpy as np
from yolo2retina.annotations import AnnotationsBuilder

class CsvBoxes:
    """x1,y1,x2,y2,label per line; image size in the first line."""
    name = "csvboxes"
    description = "test plug-in"

    def detect(self, path):
        return path.suffix == ".boxes"

    def splits(self, path):
        return ()

    def read(self, path, split=None, *, class_names=None, strict=False, **kw):
        lines = path.read_text().split()
        w, h = map(int, lines[0].split(","))
        rows = [list(map(float, ln.split(","))) for ln in lines[1:]]
        b = AnnotationsBuilder()
        b.add(path.with_suffix(".png"), (h, w), [r[:4] for r in rows], [int(r[4]) for r in rows])
        return b.build(class_names or ["thing"])

    def write(self, splits, dst, *, images="copy", overwrite=False, progress=False):
        raise NotImplementedError

ADAPTER = CsvBoxes()
'''


def _fake_dist(root: Path, entry: str) -> None:
    dist = root / "fake_formats-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-formats\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[yolo2retina.formats]\n{entry}\n")


def test_entry_point_plugin_is_found(
    clean_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution declaring the yolo2retina.formats entry point plugs in a format."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "fake_formats_plugin.py").write_text(PLUGIN)
    _fake_dist(site, "csvboxes = fake_formats_plugin:ADAPTER")
    monkeypatch.syspath_prepend(str(site))
    reload_plugins()
    assert "csvboxes" in list_formats()
    f = tmp_path / "x.boxes"
    f.write_text("64,48\n1,2,30,40,0\n")
    assert detect_format(f) == "csvboxes"
    ds = DetectionDataset.from_path(f)
    assert ds.num_boxes == 1 and ds.class_names == ("thing",)
    assert ds.annotations.boxes.tolist() == [[1, 2, 30, 40]]


def test_broken_plugin_warns_and_does_not_break(
    clean_registry: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plug-in that fails to import is reported with a warning; built-ins still work."""
    site = tmp_path / "site"
    site.mkdir()
    _fake_dist(site, "broken = no_such_module_here:ADAPTER")
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(RuntimeWarning, match="'broken'.*fake-formats.*not registered"):
        reload_plugins()
    assert "yolo" in list_formats()


def test_from_path_and_dataset_classes(tmp_path: Path) -> None:
    """DetectionDataset.from_path auto-detects; VocDataset and CocoDataset load directly."""
    make_voc(tmp_path / "v", {"a": [{"name": "x", "box": (1, 1, 9, 9), "difficult": 1}]})
    f = make_coco(tmp_path / "c")
    assert len(DetectionDataset.from_path(tmp_path / "v")) == 1
    voc = VocDataset(tmp_path / "v")
    _, target = voc[0]
    assert len(target["boxes"]) == 0  # difficult box left out of training targets
    _, target = VocDataset(tmp_path / "v", include_ignored=True)[0]
    assert len(target["boxes"]) == 1
    coco = CocoDataset(f)
    assert len(coco) == 2 and coco.num_boxes == 1
    assert load_annotations(f, format="coco").num_boxes == 1


# -- one registration style: built-ins at import, plug-ins on the first lookup ---------------


def test_builtins_are_registered_at_import_and_plugins_scanned_on_first_lookup() -> None:
    """Importing the registry registers yolo, voc and coco without scanning entry points;
    the first lookup scans them once."""
    import subprocess
    import sys

    code = """
import importlib.metadata as md
calls = []
real = md.entry_points
def spy(**kw):
    calls.append(kw)
    return real(**kw)
md.entry_points = spy
import yolo2retina.formats.registry as r
from yolo2retina.formats import coco, voc, yolo
assert calls == [], calls
assert r._REGISTRY == {"yolo": yolo.ADAPTER, "voc": voc.ADAPTER, "coco": coco.ADAPTER}
r.get_format("yolo")
r.list_formats()
assert len(calls) == 1, calls
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_unregistered_builtin_comes_back_after_reload(clean_registry: None) -> None:
    """unregister_format removes a built-in until reload_plugins registers it again."""
    unregister_format("voc")
    assert "voc" not in list_formats()
    reload_plugins()
    assert "voc" in list_formats() and get_format("voc").name == "voc"


def test_adapters_import_the_protocol_never_the_registry() -> None:
    """Format modules take FormatAdapter, ImageMode and WriteReport from formats.base, so the
    registry (which imports the adapters) and the adapters form no cycle."""
    import ast

    import yolo2retina.formats as pkg
    from yolo2retina.formats import base, registry

    folder = Path(pkg.__file__).parent
    for module in sorted(folder.glob("*.py")):
        if module.name in ("__init__.py", "registry.py"):
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
                assert not any(n.startswith("yolo2retina.formats.registry") for n in names), (
                    module.name
                )
    # the old import path still gives the same objects
    assert registry.WriteReport is base.WriteReport and registry.ImageMode is base.ImageMode
    assert registry.FormatAdapter is base.FormatAdapter is FormatAdapter


def test_load_annotations_options_are_keyword_only(tmp_path: Path) -> None:
    """load_annotations(path, format=..., split=...): a positional format is a TypeError."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.2 0.2"]})
    assert len(load_annotations(y, format="yolo", split="train")) == 1
    with pytest.raises(TypeError):
        load_annotations(y, "yolo", "train")  # type: ignore[misc]
