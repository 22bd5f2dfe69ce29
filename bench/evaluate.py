"""Benchmark: yolo2retina.coco_map against pycocotools, faster-coco-eval and torchmetrics.

Generates a sticky-board-like evaluation set (many small boxes), then times each library
on the same ground truth and detections in its own forked process, and prints the
seconds, the peak memory growth of that process and the 12 COCO numbers each returns.

Run from the repository root (peers come with the ``bench`` extra)::

    python bench/evaluate.py                  # 5,000 images, ~40k gt, ~43k detections
    python bench/evaluate.py --images 500     # quicker

Times exclude building each library's input objects (pycocotools' COCO / loadRes,
torchmetrics' tensors, yolo2retina's Annotations and Targets) and include everything
from matching to the 12 numbers (evaluate + accumulate + summarize).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from yolo2retina.annotations import Annotations, AnnotationsBuilder
from yolo2retina.coco_metric import coco_map
from yolo2retina.target import FLAG_CROWD, Target

NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
IMAGE_SIZE = 640


def make_data(n_images: int, seed: int = 0) -> tuple[Annotations, list[Target]]:
    """~8 gt per image over 3 classes, mostly < 32 px; ~85% found (jittered), plus false ones."""
    rng = np.random.default_rng(seed)
    b = AnnotationsBuilder()
    preds = []
    for i in range(n_images):
        n = int(rng.poisson(8.0))
        size = np.exp(rng.normal(np.log(18.0), 0.45, (n, 2)))
        size[rng.random(n) < 0.08] *= 5.0  # a few medium/large boxes
        size = np.clip(size, 2.0, IMAGE_SIZE / 2)
        xy = rng.uniform(0, IMAGE_SIZE - size)
        gt = np.round(np.c_[xy, xy + size], 1)
        labels = rng.choice(3, n, p=[0.6, 0.3, 0.1])
        flags = np.where(rng.random(n) < 0.01, FLAG_CROWD, 0).astype(np.uint8)
        b.add(f"img_{i:05d}.jpg", (IMAGE_SIZE, IMAGE_SIZE), gt, labels, flags, image_id=i)

        found = rng.random(n) < 0.85
        jitter = rng.normal(0.0, 0.08, (int(found.sum()), 4)) * np.repeat(size[found], 2, axis=1)
        det = gt[found] + jitter
        det_labels = np.where(rng.random(det.shape[0]) < 0.93, labels[found], rng.choice(3))
        n_false = int(rng.poisson(1.8))
        fsize = np.exp(rng.normal(np.log(16.0), 0.5, (n_false, 2)))
        fxy = rng.uniform(0, IMAGE_SIZE - fsize)
        det = np.r_[det, np.c_[fxy, fxy + fsize]]
        det_labels = np.r_[det_labels, rng.choice(3, n_false)]
        det = np.clip(det, 0, IMAGE_SIZE)
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 0.5)
        scores = np.r_[rng.beta(5, 2, int(found.sum())), rng.beta(2, 5, n_false)]
        scores = np.round(scores, 2)  # ties, as real models produce them
        preds.append(Target(det, det_labels, scores))
    return b.build(["varroa", "wax_moth", "debris"]), preds


# -- input converters (not timed) ---------------------------------------------------------------


def coco_dicts(
    ann: Annotations, preds: list[Target]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    images = [
        {"id": int(i), "height": int(h), "width": int(w), "file_name": str(p)}
        for i, (h, w), p in zip(
            ann.image_ids.tolist(), ann.image_hw_array.tolist(), ann.paths.tolist(), strict=True
        )
    ]
    gts: list[dict[str, Any]] = []
    for i in range(len(ann)):
        t = ann.target(i)
        crowd = ann.flags[ann.box_slice(i)] != 0
        for box, lab, c in zip(t.to_coco().tolist(), t.labels.tolist(), crowd, strict=True):
            gts.append(
                {
                    "id": len(gts) + 1,
                    "image_id": int(ann.image_ids[i]),
                    "category_id": lab + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": int(c),
                }
            )
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(ann.class_names)]
    dts = []
    for i, p in enumerate(preds):
        assert p.scores is not None
        for box, lab, s in zip(
            p.to_coco().tolist(), p.labels.tolist(), p.scores.tolist(), strict=True
        ):
            dts.append(
                {"image_id": int(ann.image_ids[i]), "category_id": lab + 1, "bbox": box, "score": s}
            )
    return {"images": images, "annotations": gts, "categories": cats}, dts


# -- one runner per library: (prepare, run) ------------------------------------------------------


def run_yolo2retina(ann: Annotations, preds: list[Target]) -> Callable[[], np.ndarray]:
    return lambda: coco_map(ann, preds).stats


def _cocoeval(module: str, ann: Annotations, preds: list[Target]) -> Callable[[], np.ndarray]:
    if module == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    gt_dict, dts = coco_dicts(ann, preds)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        dt = gt.loadRes(dts)

    def run() -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            e = COCOeval(gt, dt, "bbox")
            e.evaluate()
            e.accumulate()
            e.summarize()
        return np.asarray(e.stats[:12], dtype=np.float64)

    return run


def run_pycocotools(ann: Annotations, preds: list[Target]) -> Callable[[], np.ndarray]:
    return _cocoeval("pycocotools", ann, preds)


def run_faster_coco_eval(ann: Annotations, preds: list[Target]) -> Callable[[], np.ndarray]:
    return _cocoeval("faster_coco_eval", ann, preds)


def run_torchmetrics(ann: Annotations, preds: list[Target]) -> Callable[[], np.ndarray]:
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    tm_preds, tm_targets = [], []
    for i, p in enumerate(preds):
        assert p.scores is not None
        t = ann.target(i)
        area = (t.boxes[:, 2] - t.boxes[:, 0]).astype(np.float64) * (
            t.boxes[:, 3] - t.boxes[:, 1]
        ).astype(np.float64)
        tm_preds.append(
            {
                "boxes": torch.from_numpy(p.boxes),
                "scores": torch.from_numpy(p.scores),
                "labels": torch.from_numpy(p.labels),
            }
        )
        tm_targets.append(
            {
                "boxes": torch.from_numpy(t.boxes),
                "labels": torch.from_numpy(t.labels),
                "iscrowd": torch.from_numpy((ann.flags[ann.box_slice(i)] != 0).astype(np.int64)),
                "area": torch.from_numpy(area),
            }
        )
    keys = (
        "map",
        "map_50",
        "map_75",
        "map_small",
        "map_medium",
        "map_large",
        "mar_1",
        "mar_10",
        "mar_100",
        "mar_small",
        "mar_medium",
        "mar_large",
    )

    def run() -> np.ndarray:
        metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
        metric.update(tm_preds, tm_targets)
        with contextlib.redirect_stdout(io.StringIO()):
            out = metric.compute()
        return np.array([float(out[k]) for k in keys])

    return run


RUNNERS = {
    "yolo2retina": run_yolo2retina,
    "pycocotools": run_pycocotools,
    "faster-coco-eval": run_faster_coco_eval,
    "torchmetrics": run_torchmetrics,
}


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _child(name: str, ann: Annotations, preds: list[Target], repeat: int, q: Any) -> None:
    try:
        run = RUNNERS[name](ann, preds)
        base = _rss_kib("VmRSS")
        best = float("inf")
        stats = np.zeros(12)
        for _ in range(repeat):
            t0 = time.perf_counter()
            stats = run()
            best = min(best, time.perf_counter() - t0)
        peak = _rss_kib("VmHWM")
        q.put((name, best, max(peak - base, 0) / 1024.0, stats.tolist(), ""))
    except Exception as e:  # a missing peer must not stop the others
        q.put((name, float("nan"), float("nan"), [float("nan")] * 12, f"{type(e).__name__}: {e}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000, help="images to generate")
    ap.add_argument("--repeat", type=int, default=3, help="runs per library; the best is shown")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the generated set")
    ap.add_argument(
        "--only", nargs="*", default=list(RUNNERS), choices=list(RUNNERS), help="libraries"
    )
    args = ap.parse_args()

    ann, preds = make_data(args.images, args.seed)
    n_det = sum(len(p) for p in preds)
    small = float(
        np.mean(
            (ann.boxes[:, 2] - ann.boxes[:, 0]).astype(np.float64)
            * (ann.boxes[:, 3] - ann.boxes[:, 1])
            < 32**2
        )
    )
    print(
        f"{len(ann)} images, {ann.num_boxes} gt boxes ({small:.0%} smaller than 32x32 px),"
        f" {ann.num_classes} classes, {n_det} detections; best of {args.repeat} run(s)"
    )
    ctx = mp.get_context("fork")
    results = []
    for name in args.only:
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(name, ann, preds, args.repeat, q))
        p.start()
        results.append(q.get())
        p.join()

    ref = next((r for r in results if r[0] == "pycocotools" and not r[4]), None)
    header = f"{'library':<17} {'seconds':>8} {'x pycoco':>8} {'peak MiB':>8}  " + " ".join(
        f"{n:>6}" for n in NAMES
    )
    print(header)
    print("-" * len(header))
    for name, secs, mib, stats, err in results:
        if err:
            print(f"{name:<17} failed: {err}")
            continue
        rel = f"{secs / ref[1]:8.3f}" if ref else f"{'-':>8}"
        print(f"{name:<17} {secs:8.3f} {rel} {mib:8.1f}  " + " ".join(f"{v:6.4f}" for v in stats))
    if ref:
        print("\nlargest difference from pycocotools over the 12 numbers:")
        for name, _, _, stats, err in results:
            if not err and name != "pycocotools":
                print(f"  {name:<17} {np.max(np.abs(np.array(stats) - np.array(ref[3]))):.3g}")


if __name__ == "__main__":
    main()
