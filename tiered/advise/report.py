"""What the advisor hands back: a ranked table, a JSON record, a tiered-train config, a plot."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..units import format_size
from .cost import Prediction


def table(preds: list[Prediction], infeasible: list | None = None) -> str:
    """Ranked placements: predicted epoch, its terms, hit rates and bytes per tier."""
    head = (f"{'#':>2}  {'placement':28} {'epoch s':>8} {'bound':>9} {'sample':>7} {'plan':>6} "
            f"{'load':>7} {'assem':>6} {'move':>6} {'compute':>8} {'DRAM hit':>8} {'PMem hit':>8}"
            f"  {'DRAM':>9} {'PMem':>9} {'SSD':>9}")
    lines = [head, "-" * len(head)]
    for i, q in enumerate(preds, 1):
        t = q.terms
        load = sum(v for k, v in t.items() if k.startswith("load_"))
        pm = q.hit_rates.get("pmem_cache")
        lines.append(
            f"{i:>2}  {q.name[:28]:28} {q.epoch_seconds:8.2f} {q.bound:>9} {t['sampling']:7.2f} "
            f"{t['planning']:6.2f} {load:7.2f} {t['assemble']:6.2f} {t['move']:6.2f} "
            f"{t['compute']:8.2f} {q.hit_rates['dram_cache']:8.3f} "
            f"{'-' if pm is None else format(pm, '.3f'):>8}  "
            + " ".join(f"{format_size(q.bytes.get(k, 0)):>9}" for k in ("dram", "pmem", "ssd")))
    for c in infeasible or []:
        lines.append(f"--  {c.name[:28]:28} does not fit: {c.error.splitlines()[0][:160]}")
    return "\n".join(lines)


def write_json(path: str | Path, payload: dict) -> Path:
    """The whole advice as JSON (probes, profile figures, candidates, predictions, guidance)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_plain))
    return path


def _plain(o):
    if hasattr(o, "as_dict"):
        return o.as_dict()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_config(path: str | Path, settings: dict, comment: str) -> Path:
    """A YAML file `tiered-train --config` accepts (keys are TrainConfig fields)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(settings, sort_keys=False)
    path.write_text("".join(f"# {ln}\n" for ln in comment.splitlines()) + body)
    return path


def plot(path: str | Path, sweep: dict[str, list[tuple[int, float]]], budget: int,
         title: str) -> Path:
    """PNG of predicted epoch time against DRAM budget, one line per kind of placement."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, pts in sorted(sweep.items()):
        if pts:
            xs, ys = zip(*sorted(pts))
            ax.plot([x / 2**30 for x in xs], ys, marker="o", label=name)
    ax.axvline(budget / 2**30, color="grey", linestyle="--", label="given budget")
    ax.set_xlabel("DRAM budget (GiB)")
    ax.set_ylabel("predicted epoch time (s)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
