"""Settings shared by the commands: config files, fanout lists and cache sizes.

`tiered-train` (node and link tasks) and the advisor's config writer read the same
file formats and spell sizes the same way; parsing them here keeps one meaning.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Collection, Iterable

import yaml

from .units import parse_size


def read_settings(path: str | Path, known: Collection[str], ignore: Collection[str] = ()) -> dict:
    """Settings from a .yaml/.yml/.toml/.json file; dashes in keys read as underscores.

    Keys outside `known` are an error naming the file (a typo must not be ignored);
    keys in `ignore` are accepted and dropped (e.g. `task`, read by the dispatcher).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot parse ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings, found {type(data).__name__}")
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(known) - set(ignore))
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {unknown}; known: {sorted(known)}")
    return {k: v for k, v in data.items() if k not in ignore}


def fanout_list(v: str | Iterable, name: str) -> list[int]:
    """"15,10,5" or [15, 10, 5] as ints; each positive or -1 (all neighbours)."""
    if isinstance(v, str):
        v = [p for p in v.replace(" ", "").split(",") if p]
    try:
        out = [int(x) for x in v]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be comma-separated integers, got {v!r}") from None
    if not out or any(x == 0 or x < -1 for x in out):
        raise ValueError(f"{name} must be positive integers or -1 (all neighbours), got {out}")
    return out


def size_in_rows(v: str | int, num_rows: int, row_bytes: int, name: str = "cache_size") -> int:
    """A cache size given as rows ("5000"), a share of the rows ("10%") or bytes ("64MiB")."""
    s = str(v).strip()
    try:
        if s.endswith("%"):
            return int(num_rows * float(s[:-1]) / 100)
        if s.isdigit():
            return int(s)
        return parse_size(s) // max(row_bytes, 1)
    except ValueError:
        raise ValueError(f"{name} {v!r}: expected rows, a share (25%) or bytes (64MiB)") from None


def join_list_flags(argv: list[str], flags: Collection[str]) -> list[str]:
    """`--fanouts -1,-1` as `--fanouts=-1,-1`: argparse would take -1,-1 for a flag."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in flags and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out
