"""Predictor (yolo2retina.predictor): a checkpoint loaded through model.load_model, ready to predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests._prediction_helpers import NAMES, tiny_checkpoint, write_rotated_photo
from yolo2retina import coco_map
from yolo2retina.errors import ConfigError
from yolo2retina.predictor import Predictor
from yolo2retina.synthetic import synthetic_sticky_board


def test_predictor_from_checkpoint_missing_file(tmp_path: Path) -> None:
    """A missing checkpoint is a ConfigError naming the path."""
    with pytest.raises(ConfigError, match=r"nope\.pt"):
        Predictor.from_checkpoint(tmp_path / "nope.pt")


@pytest.mark.slow
def test_trained_retinanet_finds_mites_on_exif_rotated_board(tmp_path: Path) -> None:
    """A real RetinaNet trained on the synthetic board finds the mites of an EXIF-6 photo.

    Trains the demo's model (resnet18-FPN, 128 px, fitted anchors) for two epochs on the
    synthetic sticky board (about two minutes on two CPU cores), checkpoints it, loads it with
    :meth:`Predictor.from_checkpoint`, then predicts on the validation boards stored rotated
    90° with EXIF orientation 6, as phones store them. Scored against the labels of the
    *upright* boards, the predictions must reach AP50 >= 0.4 (0.65 measured) and find half of
    the mites at score 0.3; the same stored pixels without their EXIF tag (the sideways board)
    must score near zero.
    """
    from yolo2retina.formats.yolo import read_yolo
    from yolo2retina.train import DEMO_CONFIG, DEMO_DATA, DEMO_MODEL, TrainConfig, run_training

    torch.set_num_threads(min(2, torch.get_num_threads()))
    data = synthetic_sticky_board(tmp_path / "board", **{**DEMO_DATA, "n_images": 160})
    config = TrainConfig(**{**DEMO_CONFIG, "epochs": 2}, out_dir=tmp_path / "run", device="cpu")
    run_training(data, config, **DEMO_MODEL, log=lambda _line: None)
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu")
    assert predictor.class_names == ("varroa",)

    val = read_yolo(data, split="val")
    rotated, stored = [], []
    for i in range(len(val)):
        with Image.open(val.image_path(i)) as im:
            upright = im.convert("RGB")
        path = write_rotated_photo(tmp_path / f"rot_{i}.jpg", upright)
        rotated.append(path)
        with Image.open(path) as raw:  # the stored pixels, without applying the EXIF tag
            stored.append(torch.from_numpy(np.asarray(raw.convert("RGB")).copy()).permute(2, 0, 1))
    assert val.num_boxes >= 100

    pred_rot = predictor.predict(rotated, score_threshold=0.05)
    pred_raw = predictor.predict(stored, score_threshold=0.05)
    m_rot = coco_map(val, pred_rot)
    m_raw = coco_map(val, pred_raw)
    print(
        f"EXIF-6 copies: AP50 {m_rot.map50:.3f}, AP {m_rot.map:.3f}; "
        f"stored pixels without EXIF: AP50 {m_raw.map50:.3f}"
    )
    # the model has learnt the mites, and finds them on the upright board ...
    assert m_rot.map50 >= 0.4, m_rot  # 0.65 measured; an untrained model scores ~0
    # ... and orientation matters: boxes on the sideways pixels miss the upright mites
    assert m_raw.map50 <= 0.2 * m_rot.map50, m_raw
    # at a working threshold, half the mites are found (recall at IoU 0.5, all areas, 100 dets)
    confident = [p.select(p.scores >= 0.3) for p in pred_rot]
    recall50 = float(coco_map(val, confident).recall[0, 0, 0, -1])
    print(f"recall@0.5 at score 0.3: {recall50:.3f}")
    assert recall50 >= 0.5, recall50


def test_from_checkpoint_keeps_the_loaded_model_of_load_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The predictor is built from model.load_model's LoadedModel and keeps it (one loader)."""
    from yolo2retina.model import LoadedModel, load_model

    monkeypatch.chdir(tmp_path)
    tiny_checkpoint(tmp_path / "best.pt")
    seen: list[LoadedModel] = []

    def spy(path: Any, **kw: Any) -> LoadedModel:
        seen.append(load_model(path, **kw))
        return seen[-1]

    monkeypatch.setattr("yolo2retina.predictor.load_model", spy)
    p = Predictor.from_checkpoint("best.pt")  # relative, as a user types it
    [loaded] = seen
    assert p.loaded is loaded and p.model is loaded.model
    assert p.class_names == tuple(NAMES) and p.meta == loaded.meta
    assert p.source == "best.pt" and loaded.model_args["num_classes"] == 2
    again = Predictor.from_loaded(loaded)
    assert again.source == str(loaded.path) and again.model is loaded.model
    [t] = again.predict(torch.zeros(3, 64, 64), score_threshold=0.0, tile="auto")
    assert t.scores is not None and (t.labels < 2).all()


def test_a_predictor_by_hand_has_no_checkpoint() -> None:
    """Predictor(model, names) still works for any callable; loaded is None then."""
    p = Predictor(lambda images: [], ["mite"])
    assert p.loaded is None and p.class_names == ("mite",) and p.meta == {}


def test_recorded_score_threshold_comes_from_the_checkpoint_meta(tmp_path: Path) -> None:
    """The threshold training chose is readable from the Predictor; predict's default stays."""
    import inspect

    state = torch.load(tiny_checkpoint(tmp_path / "best.pt"), weights_only=True)
    assert Predictor.from_checkpoint(tmp_path / "best.pt").recorded_score_threshold is None
    state["meta"]["score_threshold"] = {"score": 0.25, "f1": 0.5}
    torch.save(state, tmp_path / "best.pt")
    assert Predictor.from_checkpoint(tmp_path / "best.pt").recorded_score_threshold == 0.25
    default = inspect.signature(Predictor.predict).parameters["score_threshold"].default
    assert default == 0.3
    bad = Predictor(lambda images: [], ["mite"], {"score_threshold": {"score": -1}}, "x.pt")
    with pytest.raises(ConfigError, match=r"x\.pt: meta\['score_threshold'\]"):
        _ = bad.recorded_score_threshold


def test_from_onnx_passes_threads_to_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Predictor.from_onnx(threads=N)`` bounds onnxruntime's intra-op threads; a bad
    value is a ConfigError, as OnnxDetector's."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    from tests.test_onnx_runtime import _identity_model

    monkeypatch.chdir(tmp_path)
    _identity_model(Path("m.onnx"))
    p = Predictor.from_onnx("m.onnx", threads=2)
    assert p.model.session.get_session_options().intra_op_num_threads == 2
    assert Predictor.from_onnx("m.onnx").model.threads is None
    with pytest.raises(ConfigError, match="threads must be a whole number >= 1"):
        Predictor.from_onnx("m.onnx", threads=0)
    # from_checkpoint hands an .onnx to from_onnx with its threads, as the CLI loads it
    p = Predictor.from_checkpoint("m.onnx", threads=3)
    assert p.model.session.get_session_options().intra_op_num_threads == 3
    for path in ("m.onnx", "best.pt"):  # a bad count is refused before any file is read
        with pytest.raises(ConfigError, match="threads must be a whole number >= 1"):
            Predictor.from_checkpoint(path, threads=0)
