"""On-disk cache of indexed datasets, keyed by source, file checksums, options and the code that
builds them; written atomically. A change to that code (the protocol, a generator, a parser) is a
new key, so a cached dataset never outlives the code that made it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from dien_core import VocabSizes

from .dataset import Dataset, Split

FORMAT_VERSION = 1
# the modules whose code decides a dataset's content (not loader.py: batches are made after the cache)
BUILDERS = ("__init__.py", "amazon.py", "dataset.py", "movielens.py", "protocol.py", "synthetic.py", "tables.py")


def _code_digest() -> str:
    h = hashlib.sha256()
    for name in BUILDERS:
        h.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


CODE_DIGEST = _code_digest()


def cache_dir() -> Path:
    return Path(os.environ.get("DIEN_BENCH_CACHE", Path.home() / ".cache" / "dien-bench"))


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(source: str, files: list[Path], options: dict) -> str:
    described = {
        "version": FORMAT_VERSION,
        "code": CODE_DIGEST,
        "source": source,
        "options": options,
        "files": [(p.name, file_digest(p)) for p in sorted(files)],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:24]


def save(dataset: Dataset, path: Path) -> None:
    arrays = {name: getattr(dataset, name) for name in ("flat_item", "flat_cate", "item_cate", "item_count")}
    for split in ("train", "valid", "test"):
        for f in fields(Split):
            value = getattr(getattr(dataset, split), f.name)
            arrays[f"{split}.{f.name}"] = value.astype(str) if value.dtype.kind in "OU" else value
    arrays["meta"] = np.array(json.dumps({"name": dataset.name, "vocab": [dataset.vocab.users, dataset.vocab.items, dataset.vocab.cates]}))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> Dataset | None:
    """The cached dataset, or None when absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            splits = {s: Split(**{f.name: z[f"{s}.{f.name}"] for f in fields(Split)}) for s in ("train", "valid", "test")}
            return Dataset(
                meta["name"], VocabSizes(*meta["vocab"]), z["flat_item"], z["flat_cate"], z["item_cate"], z["item_count"], **splits
            )
    except (OSError, ValueError, KeyError):
        return None
