"""The report of bench/real_accuracy.py: its Markdown tables, the machine the numbers come
from, and the merge of several runs' JSON (``--combine``)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def _num(value: Any, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def table(results: dict[str, dict[str, Any]], skipped: dict[str, str]) -> str:
    """The summary table and the checkpoint table, in Markdown."""
    lines = [
        "| recipe | img | epochs | s/step | train min | val mAP@0.5 | mAP | recall@0.5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        f = r["final"] or {}
        lines.append(
            f"| {name} | {r['img_size']} | {r['epochs']} | {_num(r['seconds_per_step'], '.2f')} "
            f"| {r['train_seconds'] / 60:.1f} | {_num(f.get('map50'))} | {_num(f.get('map'))} "
            f"| {_num(f.get('recall50'))} |"
        )
    for name, why in skipped.items():
        lines.append(f"| {name} | - | - | - | - | skipped: {why} | - | - |")
    lines += [
        "",
        "| recipe | epoch | train min | budget | val mAP@0.5 | mAP | recall@0.5 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for c in r["checkpoints"]:
            lines.append(
                f"| {name} | {c['epoch']} | {c['train_seconds'] / 60:.1f} "
                f"| {c['budget_fraction']:.0%} | {_num(c['map50'])} | {_num(c['map'])} "
                f"| {_num(c['recall50'])} |"
            )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the numbers come from."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def combine(paths: Sequence[Path]) -> dict[str, Any]:
    """One report of several runs' JSON: their recipes, in order, and each run's machine.

    Raises:
        SystemExit: a file is missing or two runs have a recipe of the same name.
    """
    merged: dict[str, Any] = {"combined": [], "recipes": {}, "skipped": {}}
    for path in paths:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SystemExit(f"{path}: cannot read ({e})") from None
        for name, result in report["recipes"].items():
            if name in merged["recipes"]:
                raise SystemExit(f"{path}: recipe {name!r} is also in an earlier file")
            merged["recipes"][name] = {**result, "machine": report["machine"]}
        merged["skipped"].update(report.get("skipped", {}))
        merged["combined"].append(
            {k: report.get(k) for k in ("data", "images", "minutes", "machine", "wall_seconds")}
            | {"file": str(path)}
        )
    return merged
