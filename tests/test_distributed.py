"""Tests for DistributedDataParallel training: two CPU processes with gloo under torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from yolo2retina.synthetic import synthetic_sticky_board

WORKER = textwrap.dedent(
    """
    import os, sys
    import torch
    from yolo2retina.dataset import YoloDataset
    from yolo2retina.model import build_retinanet
    from yolo2retina.train import TrainConfig, fit

    torch.set_num_threads(1)
    data, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(int(os.environ["RANK"]))  # different inits: DDP must broadcast rank 0's
    model = build_retinanet(num_classes=1, backbone="resnet18_fpn", min_size=64, max_size=64)
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    config = TrainConfig(
        epochs=1, batch_size=1, lr=0.01, num_workers=0, out_dir=out, metric="val_loss"
    )
    result = fit(model, YoloDataset(data, "train"), YoloDataset(data, "val"), config)
    params = {k: v.detach() for k, v in model.named_parameters()}
    torch.save({"initial": initial, "final": params, "steps": result.train_steps},
               os.path.join(out, f"rank{os.environ['RANK']}.pt"))
    """
)


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    """Under torchrun with 2 CPU processes, both ranks end with the same trained weights."""
    data = synthetic_sticky_board(tmp_path / "data", n_images=6, image_size=64, val_fraction=0.34)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        [*cmd, str(script), str(data), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    assert r0["steps"] == r1["steps"] == 2  # 4 training images shared by 2 ranks, batch 1
    assert r0["final"].keys() == r1["final"].keys()
    for k in r0["final"]:
        assert torch.equal(r0["final"][k], r1["final"][k]), k
    changed = [k for k in r0["final"] if not torch.equal(r0["final"][k], r0["initial"][k])]
    assert changed  # training moved the weights
    # only rank 0 logs and writes
    assert proc.stdout.count("training on cpu (2 process(es))") == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert {"best.pt", "last.pt", "curves.png"} <= {p.name for p in out.iterdir()}
