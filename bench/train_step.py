"""Training steps per second: yolo2retina's ``fit`` against a hand-written torchvision loop.

Both train the same model (same initial weights) on the same synthetic sticky board with
the same batch size, DataLoader workers, optimizer and thread count, in this one process.
The runs alternate (hand, fit, hand, fit, ...) so that a change in machine load hits both;
the median of the repeats is reported. The library's overhead is
``hand steps/s / fit steps/s - 1``, once for the loop alone (``FitResult.train_seconds``)
and once for the whole ``fit`` call (set-up, the checkpoint and metrics.jsonl included).

On a machine with CUDA the same comparison runs again with mixed precision (bf16 where
supported, else fp16 with a GradScaler) on both sides.

Usage:
    python bench/train_step.py                      # CPU: resnet18_fpn, 128 px, batch 4
    python bench/train_step.py --device cuda --backbone resnet50_fpn --img-size 640 --batch-size 8
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from yolo2retina.dataset import DetectionDataset, YoloDataset, collate
from yolo2retina.model import build_retinanet
from yolo2retina.synthetic import synthetic_sticky_board
from yolo2retina.train import TrainConfig, fit


def hand_loop(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    args: argparse.Namespace,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> tuple[int, float]:
    """The loop a user would write from torchvision's detection reference; (steps, seconds)."""
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    model.train()
    steps = 0
    _sync(device)
    t0 = time.perf_counter()
    for images, targets in loader:
        imgs = [im.as_subclass(torch.Tensor).to(device, non_blocking=True) for im in images]
        tgts = [
            {
                "boxes": t["boxes"].as_subclass(torch.Tensor).to(device, non_blocking=True),
                "labels": t["labels"].to(device, non_blocking=True),
            }
            for t in targets
        ]
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss_dict = model(imgs, tgts)
        loss = sum(loss_dict.values())
        if not math.isfinite(loss.item()):  # torchvision's reference checks this too
            raise FloatingPointError(f"loss is {loss.item()}")
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        steps += 1
    _sync(device)
    return steps, time.perf_counter() - t0


def library_fit(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    args: argparse.Namespace,
    device: torch.device,
    amp: str,
    out: Path,
) -> tuple[int, float, float]:
    """``fit`` for one epoch without validation; (steps, loop seconds, whole-call seconds)."""
    config = TrainConfig(
        epochs=1,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer="sgd",
        grad_clip=None,  # the hand loop does not clip either
        num_workers=args.workers,
        device=str(device),
        amp=amp,  # type: ignore[arg-type]
        out_dir=out,
        progress=not args.no_progress,
    )
    _sync(device)
    t0 = time.perf_counter()
    result = fit(model, dataset, None, config, log=lambda _line: None)
    _sync(device)
    return result.train_steps, result.train_seconds, time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare(
    dataset: DetectionDataset,
    args: argparse.Namespace,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    amp: str,
    workdir: Path,
) -> dict[str, Any]:
    """Alternate hand loop and fit ``args.repeats`` times from the same initial weights."""
    torch.manual_seed(0)
    model = build_retinanet(
        num_classes=1,
        backbone=args.backbone,
        min_size=args.img_size,
        max_size=args.img_size,
        anchor_sizes="auto",
        dataset=dataset.annotations,
    ).to(device)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    # warm-up (allocator, cuDNN autotuning, lazy imports) outside any timing
    warm = DetectionDataset(dataset.annotations.subset(list(range(2 * args.batch_size))))
    hand_loop(model, warm, args, device, amp_dtype)
    library_fit(model, warm, args, device, amp, workdir / "warm")

    hand_rates, fit_rates, call_rates = [], [], []
    for r in range(args.repeats):
        model.load_state_dict(initial)
        steps, secs = hand_loop(model, dataset, args, device, amp_dtype)
        hand_rates.append(steps / secs)
        model.load_state_dict(initial)
        steps, loop_secs, call_secs = library_fit(
            model, dataset, args, device, amp, workdir / f"r{r}"
        )
        fit_rates.append(steps / loop_secs)
        call_rates.append(steps / call_secs)
        print(
            f"  repeat {r + 1}: hand {hand_rates[-1]:.3f} steps/s, fit loop {fit_rates[-1]:.3f}, "
            f"fit call {call_rates[-1]:.3f}",
            flush=True,
        )
    hand, loop, call = (statistics.median(x) for x in (hand_rates, fit_rates, call_rates))
    return {
        "steps": steps,
        "hand": hand,
        "fit_loop": loop,
        "fit_call": call,
        "overhead_loop_pct": 100 * (hand / loop - 1),
        "overhead_call_pct": 100 * (hand / call - 1),
    }


def main() -> None:
    """Parse options, make the data, run the comparisons and print a summary."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backbone", default="resnet18_fpn", help="model backbone")
    p.add_argument("--img-size", type=int, default=128, help="image side in pixels")
    p.add_argument("--batch-size", type=int, default=4, help="images per step")
    p.add_argument(
        "--images", type=int, default=96, help="training images (steps = images / batch)"
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (both sides)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=3, help="alternating repeats (median reported)")
    p.add_argument("--lr", type=float, default=0.002, help="SGD learning rate (both sides)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="hide fit's progress bar")
    args = p.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    print(
        f"device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + f", torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f}, {args.backbone} at {args.img_size} px, "
        f"batch {args.batch_size}, {args.workers} workers"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = synthetic_sticky_board(
            work / "data",
            n_images=args.images + 2,
            image_size=args.img_size,
            val_fraction=2 / (args.images + 2),
        )
        dataset = YoloDataset(data, "train")
        modes: list[tuple[str, torch.dtype | None, str]] = [("fp32", None, "off")]
        if device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            modes.append((f"amp {str(amp_dtype).removeprefix('torch.')}", amp_dtype, "auto"))
        results = {}
        for name, dtype, amp in modes:
            print(f"{name}:")
            results[name] = compare(dataset, args, device, dtype, amp, work / name)
    print()
    print(
        f"{'mode':<12} {'steps':>5} {'hand/s':>8} {'fit/s':>8} {'call/s':>8} {'ovh loop':>9} {'ovh call':>9}"
    )
    for name, r in results.items():
        print(
            f"{name:<12} {r['steps']:>5} {r['hand']:>8.3f} {r['fit_loop']:>8.3f} "
            f"{r['fit_call']:>8.3f} {r['overhead_loop_pct']:>8.1f}% {r['overhead_call_pct']:>8.1f}%"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
