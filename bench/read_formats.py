"""Time and measure dataset reading: yolo2retina against pycocotools, supervision and globox.

Generates its data in a temporary folder (nothing is downloaded):

* a COCO file with ``--coco-images`` images and ``--coco-boxes`` boxes (default 100k / 1M),
  read by ``yolo2retina.formats.coco.read_coco`` and ``pycocotools.coco.COCO``;
* a small real dataset (``--small-images`` tiny JPEGs, 10 boxes each; default 5,000) in
  YOLO, VOC and COCO, read by every library that reads that format.

Each measurement runs in fresh subprocesses: one (or ``--repeat``) timed without any
tracing, then one under :mod:`tracemalloc` (Python objects and NumPy buffers) for the
peak during the read and what stays allocated while the result is alive ("kept").
Box counts must agree between libraries.

The load cache (``yolo2retina.formats.cache``) is timed apart: the first read of a
``--cache-images`` YOLO set and of the big COCO file (which writes the cache) against a
cached re-read, medians of 5, each first read in an empty cache folder, in one process
with a warm file-system cache. The generated files are back-dated by a minute (files
changed in the last 2 s are never cached).

yolo2retina reads the big COCO file with ``verify_images=False`` (the generated file has
no image files, and pycocotools never opens images either); on the small data it reads
every image header, as by default. The ``yolo2retina`` row parses with the ``fast`` extra
(orjson, and msgspec for the pieces of a large file) when it is installed; the
``yolo2retina-orjson`` row blocks msgspec, and the ``yolo2retina-json`` row blocks both to show
the stdlib ``json`` path (no extras). On the
small COCO file the ``yolo2retina-noverify`` row reads no image header either
(``verify_images=False``), as pycocotools.

After the table it prints each yolo2retina read as a ratio to every peer's, from the same
run. supervision is only at full speed with OpenCV installed (``pip install
opencv-python-headless``, in the ``bench`` extra); without it, it decodes through a
slower NumPy fallback and says so.

Usage::

    python bench/read_formats.py                 # full run (about 10 min, ~3 GB RAM)
    python bench/read_formats.py --coco-boxes 100000 --coco-images 10000   # quick
    python bench/read_formats.py --only-cache    # the load cache timings only
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

# -- data generation -----------------------------------------------------------------


def make_big_coco(path: Path, n_images: int, n_boxes: int, seed: int = 0) -> None:
    """A COCO instances JSON with non-contiguous category ids and fractional boxes."""
    rng = np.random.default_rng(seed)
    cat_ids = [1, 2, 3, 5, 8, 13, 21, 34]
    images = [
        {"id": i + 1, "file_name": f"img_{i:06d}.jpg", "width": 640, "height": 480}
        for i in range(n_images)
    ]
    owner = np.sort(rng.integers(1, n_images + 1, n_boxes))
    xy = rng.uniform(0, 400, (n_boxes, 2)).round(2)
    wh = rng.uniform(2, 80, (n_boxes, 2)).round(2)
    cats = rng.choice(cat_ids, n_boxes)
    anns = [
        {
            "id": k + 1,
            "image_id": int(owner[k]),
            "category_id": int(cats[k]),
            "bbox": [float(xy[k, 0]), float(xy[k, 1]), float(wh[k, 0]), float(wh[k, 1])],
            "area": float(wh[k, 0] * wh[k, 1]),
            "segmentation": [],
            "iscrowd": 0,
        }
        for k in range(n_boxes)
    ]
    data = {
        "info": {},
        "licenses": [],
        "categories": [{"id": c, "name": f"class_{c}", "supercategory": "x"} for c in cat_ids],
        "images": images,
        "annotations": anns,
    }
    path.write_text(json.dumps(data))


def make_yolo(yolo: Path, n_images: int, seed: int = 0) -> Path:
    """A YOLO dataset (``data.yaml``, ``images/train``, ``labels/train``) of tiny JPEGs with
    10 boxes each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (yolo / "images" / "train").mkdir(parents=True)
    (yolo / "labels" / "train").mkdir(parents=True)
    img = Image.new("RGB", (320, 240), (90, 120, 150))
    for i in range(n_images):
        img.save(yolo / "images" / "train" / f"im{i:05d}.jpg", quality=50)
        c = rng.uniform(0.2, 0.8, (10, 2))
        s = rng.uniform(0.05, 0.3, (10, 2))
        cls = rng.integers(0, 3, 10)
        rows = [
            f"{cls[k]} {c[k, 0]:.6f} {c[k, 1]:.6f} {s[k, 0]:.6f} {s[k, 1]:.6f}" for k in range(10)
        ]
        (yolo / "labels" / "train" / f"im{i:05d}.txt").write_text("\n".join(rows) + "\n")
    (yolo / "data.yaml").write_text("train: images/train\nnames: [a, b, c]\n")
    return yolo


def make_small(root: Path, n_images: int, seed: int = 0) -> dict[str, Path]:
    """A YOLO dataset of tiny JPEGs, converted to VOC and COCO with yolo2retina's writers."""
    from yolo2retina.formats import load_annotations, write_annotations

    yolo = make_yolo(root / "yolo", n_images, seed)
    ann = load_annotations(yolo / "data.yaml", split="train", cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # copies: supervision refuses images that resolve outside their folder (symlinks)
        write_annotations(ann, root / "voc", "voc", images="copy")
        write_annotations(ann, root / "coco", "coco", images="copy")
    return {
        "yolo": yolo,
        "voc": root / "voc",
        "coco": root / "coco" / "train" / "_annotations.coco.json",
    }


# -- readers (run inside a worker process) -------------------------------------------------


def _read(lib: str, fmt: str, path: str) -> tuple[Any, int]:
    p = Path(path)
    if lib.startswith("yolo2retina"):
        from yolo2retina.formats.coco import read_coco
        from yolo2retina.formats.voc import read_voc
        from yolo2retina.formats.yolo import read_yolo

        # first reads: the load cache is timed apart (cache_worker)
        if fmt == "coco-big":
            a = read_coco(p, verify_images=False, cache=False)
        elif fmt == "coco":
            a = read_coco(p, cache=False, verify_images=lib != "yolo2retina-noverify")
        elif fmt == "voc":
            a = read_voc(p, "train")
        else:
            a = read_yolo(p / "data.yaml", "train", cache=False)
        return a, a.num_boxes
    if lib == "pycocotools":
        import contextlib
        import io

        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            c = COCO(str(p))
        return c, len(c.anns)
    if lib == "supervision":
        import supervision as sv

        if fmt == "coco":
            ds = sv.DetectionDataset.from_coco(str(p.parent), str(p))
        elif fmt == "voc":
            ds = sv.DetectionDataset.from_pascal_voc(str(p / "JPEGImages"), str(p / "Annotations"))
        else:
            ds = sv.DetectionDataset.from_yolo(
                str(p / "images" / "train"), str(p / "labels" / "train"), str(p / "data.yaml")
            )
        return ds, sum(len(d) for _, _, d in ds)
    if lib == "globox":
        import globox

        if fmt == "coco":
            ds = globox.AnnotationSet.from_coco(p)
        elif fmt == "voc":
            ds = globox.AnnotationSet.from_pascal_voc(p / "Annotations")
        else:
            ds = globox.AnnotationSet.from_yolo_v5(
                p / "labels" / "train", image_folder=p / "images" / "train"
            )
        return ds, sum(len(a.boxes) for a in ds)
    raise ValueError(lib)


def settle(root: Path, age: float = 60.0) -> None:
    """Back-date generated files: the load cache never stores files changed in the last 2 s."""
    import os

    t = time.time() - age
    for p in [root, *root.rglob("*")] if root.is_dir() else [root]:
        os.utime(p, (t, t))


def cache_worker(fmt: str, path: str, runs: int = 5) -> None:
    """Time ``runs`` first reads (each into an empty cache folder, which it fills) and
    ``runs`` cached re-reads; print one JSON line with the medians."""
    import os
    import shutil
    import statistics

    folder = Path(tempfile.mkdtemp(prefix="y2r-cache-"))
    os.environ["YOLO2RETINA_CACHE_DIR"] = str(folder)
    from yolo2retina.formats.coco import read_coco
    from yolo2retina.formats.yolo import read_yolo

    def read() -> Any:
        if fmt == "coco-big":
            return read_coco(path, verify_images=False)
        return read_yolo(Path(path) / "data.yaml", "train")

    first, cached = [], []
    try:
        for _ in range(runs):
            shutil.rmtree(folder, ignore_errors=True)
            t = time.perf_counter()
            ann = read()
            first.append(time.perf_counter() - t)
            del ann
        for _ in range(runs):
            t = time.perf_counter()
            ann = read()
            cached.append(time.perf_counter() - t)
        entries = list(folder.glob("*.npz"))
        size = sum(e.stat().st_size for e in entries) / 2**20
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    line = {
        "first": statistics.median(first),
        "cached": statistics.median(cached),
        "boxes": ann.num_boxes,
        "entries": len(entries),
        "cache_mb": size,
    }
    print(json.dumps(line))


def measure_cache(groups: list[tuple[str, str, Path]]) -> list[tuple[str, dict[str, Any]]]:
    """The load cache timings of each ``(label, fmt, path)``, each in a fresh process."""
    rows = []
    for label, fmt, path in groups:
        r = _run("yolo2retina", fmt, path, "cache")
        print(f"  cache {label:<22} {r}", file=sys.stderr)
        rows.append((label, r))
    return rows


def print_cache_table(rows: list[tuple[str, dict[str, Any]]]) -> None:
    print(
        "\n| data | first read s (writes the cache) | cached read s | first / cached | cache MiB |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, r in rows:
        if "error" in r:
            print(f"| {label} | error: {r['error']} | | | |")
        elif r["entries"] != 1:
            print(f"| {label} | no cache entry was written ({r['entries']}) | | | |")
        else:
            print(
                f"| {label} | {r['first']:.3f} | {r['cached']:.4f} | "
                f"{r['first'] / r['cached']:.0f}x | {r['cache_mb']:.1f} |"
            )


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(lib: str, fmt: str, path: str, mode: str) -> None:
    """Import, measure one read, print one JSON line.

    ``mode="time"`` times the read with no tracing and takes the peak resident-size
    growth (``VmHWM``, reset through ``/proc/self/clear_refs`` after the imports);
    ``mode="mem"`` repeats the read under tracemalloc for what stays allocated while the
    result is alive (Python objects and NumPy buffers, not freed-but-cached pages).
    """
    import tracemalloc

    warnings.simplefilter("ignore")
    if mode == "cache":
        cache_worker(fmt, path)
        return
    if lib in ("yolo2retina-json", "yolo2retina-orjson"):
        sys.modules["msgspec"] = None  # type: ignore[assignment]  # the general piece path
    if lib == "yolo2retina-json":
        sys.modules["orjson"] = None  # type: ignore[assignment]  # force the stdlib parser
    # import the library first so its import cost is not counted
    if lib == "pycocotools":
        import pycocotools.coco  # noqa: F401
    elif lib == "supervision":
        import supervision  # noqa: F401
    elif lib == "globox":
        import globox  # noqa: F401
    else:
        import yolo2retina.formats  # noqa: F401
    gc.collect()
    if mode == "time":
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident size
        base = _status_mb("VmRSS")
        t = time.perf_counter()
        obj, boxes = _read(lib, fmt, path)
        seconds = time.perf_counter() - t
        peak = _status_mb("VmHWM") - base
        print(json.dumps({"seconds": seconds, "peak_mb": peak, "boxes": boxes}))
        return
    tracemalloc.start()
    obj, boxes = _read(lib, fmt, path)
    gc.collect()
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del obj
    print(json.dumps({"kept_mb": kept / 2**20, "boxes": boxes}))


def _run(lib: str, fmt: str, path: Path, mode: str) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, __file__, "--worker", lib, fmt, str(path), mode],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def measure_group(
    fmt: str, libs: tuple[str, ...], path: Path, repeat: int
) -> list[tuple[str, str, dict[str, Any]]]:
    """Time every library on one file, interleaved ``repeat`` times (so a change in machine
    load hits all of them alike); keep each one's best time, then one tracemalloc run."""
    times: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libs}
    for _ in range(repeat):
        for lib in libs:
            times[lib].append(_run(lib, fmt, path, "time"))
    rows = []
    for lib in libs:
        errors = [t for t in times[lib] if "error" in t]
        if errors:
            rows.append((fmt, lib, errors[0]))
            continue
        best = min(times[lib], key=lambda t: t["seconds"])
        mem = _run(lib, fmt, path, "mem")
        if "error" in mem:
            best = mem
        elif mem["boxes"] != best["boxes"]:
            best = {"error": f"box count changed between runs: {best['boxes']} vs {mem['boxes']}"}
        else:
            best = {**best, **mem}
        rows.append((fmt, lib, best))
        print(f"  {fmt:<9} {lib:<16} {best}", file=sys.stderr)
    return rows


def print_table(rows: list[tuple[str, str, dict[str, Any]]], label: dict[str, str]) -> None:
    """One row per (data, library): seconds, peak and kept MiB, boxes (or the error)."""
    print("| data | library | seconds | peak MiB | kept MiB | boxes |")
    print("|---|---|---:|---:|---:|---:|")
    for fmt, lib, r in rows:
        if "error" in r:
            print(f"| {label[fmt]} | {lib} | error: {r['error']} | | | |")
        else:
            print(
                f"| {label[fmt]} | {lib} | {r['seconds']:.3f} | {r['peak_mb']:.0f} | "
                f"{r['kept_mb']:.0f} | {r['boxes']} |"
            )


def print_ratios(rows: list[tuple[str, str, dict[str, Any]]], label: dict[str, str]) -> None:
    """Each yolo2retina row's time (and peak / kept memory) as a ratio to each peer's."""
    print("\n| data | yolo2retina read | peer | time ratio | peak ratio | kept ratio |")
    print("|---|---|---|---:|---:|---:|")
    for fmt in label:
        ok = {lib: r for f, lib, r in rows if f == fmt and "error" not in r}
        for ours, r in ok.items():
            if not ours.startswith("yolo2retina"):
                continue
            for peer, q in ok.items():
                if peer.startswith("yolo2retina"):
                    continue
                print(
                    f"| {label[fmt]} | {ours} | {peer} | {r['seconds'] / q['seconds']:.2f}x | "
                    f"{r['peak_mb'] / max(q['peak_mb'], 1e-9):.2f}x | "
                    f"{r['kept_mb'] / max(q['kept_mb'], 1e-9):.3f}x |"
                )


def main() -> None:
    """Generate the data, run every reader, print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coco-images", type=int, default=100_000)
    ap.add_argument("--coco-boxes", type=int, default=1_000_000)
    ap.add_argument("--small-images", type=int, default=5000)
    ap.add_argument(
        "--repeat", type=int, default=2, help="timed runs per library, interleaved (best kept)"
    )
    ap.add_argument(
        "--cache-images", type=int, default=5000, help="images of the YOLO set for the cache"
    )
    ap.add_argument("--only-cache", action="store_true", help="only the load cache timings")
    ap.add_argument(
        "--worker", nargs=4, metavar=("LIB", "FMT", "PATH", "MODE"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        big = root / "big.json"
        make_big_coco(big, args.coco_images, args.coco_boxes)
        cache_yolo = make_yolo(root / "cache-yolo", args.cache_images)
        settle(big)
        settle(cache_yolo)
        small = {} if args.only_cache else make_small(root / "small", args.small_images)
        print(
            f"generated data in {time.perf_counter() - t:.1f} s "
            f"(big COCO JSON {big.stat().st_size / 2**20:.0f} MiB)",
            file=sys.stderr,
        )
        cache_rows = measure_cache(
            [
                (f"YOLO {args.cache_images} img", "yolo", cache_yolo),
                (f"COCO {args.coco_boxes // 1000}k box", "coco-big", big),
            ]
        )
        if args.only_cache:
            print_cache_table(cache_rows)
            return
        groups: list[tuple[str, tuple[str, ...], Path]] = [
            (
                "coco-big",
                ("yolo2retina", "yolo2retina-orjson", "yolo2retina-json", "pycocotools"),
                big,
            ),
            ("yolo", ("yolo2retina", "supervision", "globox"), small["yolo"]),
            ("voc", ("yolo2retina", "supervision", "globox"), small["voc"]),
            (
                "coco",
                ("yolo2retina", "yolo2retina-noverify", "pycocotools", "supervision", "globox"),
                small["coco"],
            ),
        ]
        for fmt, libs, path in groups:
            rows += measure_group(fmt, libs, path, args.repeat)
    label = {
        "coco-big": f"COCO {args.coco_images // 1000}k img / {args.coco_boxes // 1000}k box",
        "yolo": f"YOLO {args.small_images} img",
        "voc": f"VOC {args.small_images} img",
        "coco": f"COCO {args.small_images} img",
    }
    print_table(rows, label)
    print_ratios(rows, label)
    counts: dict[str, set[int]] = {}
    for fmt, _, r in rows:
        if "boxes" in r:
            counts.setdefault(fmt, set()).add(r["boxes"])
    bad = {f: c for f, c in counts.items() if len(c) > 1}
    print("box counts agree" if not bad else f"BOX COUNTS DISAGREE: {bad}")
    print_cache_table(cache_rows)


if __name__ == "__main__":
    main()
