"""Resumable, crash-safe evaluation state (the idea of AutoAttack's ``state.py``).

A long evaluation writes one JSON state file, atomically (``advlab.io.write_json``), after every finished
batch. The file is keyed by a sha256 of the evaluation's configuration (model fingerprint or card, data
fingerprint, attacks and their settings, ε, seed, batch size, trials, EOT). Rerunning the same call finds the
file, skips every batch already recorded and gives the same result, because every batch is seeded from
``(seed, trial, stage, batch)`` alone. A different configuration (other weights, data, attack settings, ...)
does not match the key and starts fresh, overwriting the file.

Tensors too big for JSON (adversarial images kept by a cascade) go to safetensors files in a folder beside the
state file (``<state>.tensors/``), each written atomically before the JSON record that points to it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from advlab.errors import AdvlabError
from advlab.evaluate.describe import to_jsonable
from advlab.io import write_bytes, write_json

STATE_FORMAT = "advlab-evaluation-state"
STATE_VERSION = 1


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the configuration's canonical JSON (sorted keys), the state file's key."""
    canonical = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class EvaluationState:
    """Per-batch records of one evaluation; in memory only when ``path`` is None.

    Args:
        path: the JSON state file (created on the first :meth:`put`), or None for no persistence.
        config: everything that determines the result; its hash decides whether an existing file is reused.

    Attributes:
        resumed: how many records were loaded from an existing, matching state file.
    """

    def __init__(self, path: str | Path | None, config: dict[str, Any]) -> None:
        self.path = None if path is None else Path(path)
        self.config = to_jsonable(config)
        self.key = config_hash(config)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            stored = self._read(self.path)
            if stored.get("config_hash") == self.key:
                self.records = dict(stored.get("records", {}))
        self.resumed = len(self.records)

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AdvlabError(f"evaluation state file {path} is unreadable ({exc}); delete it to start the "
                              "evaluation over, or pass another state path") from exc
        if not isinstance(stored, dict) or stored.get("format") != STATE_FORMAT:
            raise AdvlabError(f"{path} is not an advlab evaluation state file; pass another state path "
                              "(advlab will not overwrite a file it did not write)")
        return stored

    def get(self, name: str) -> dict[str, Any] | None:
        """The record stored for batch ``name`` (e.g. ``"t0/b5"``), or None if it has not finished."""
        return self.records.get(name)

    def put(self, name: str, record: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> None:
        """Record a finished batch (and optional tensors), then rewrite the state file atomically."""
        record = dict(record)
        if tensors is not None and self.path is not None:
            file = self.tensor_dir / f"{_safe(name)}.safetensors"
            write_bytes(file, save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
            record["tensors"] = file.name
        elif tensors is not None:
            record["_tensors"] = {k: v.detach().cpu() for k, v in tensors.items()}
        self.records[name] = record
        if self.path is not None:
            write_json(self.path, {
                "format": STATE_FORMAT,
                "version": STATE_VERSION,
                "config_hash": self.key,
                "config": self.config,
                "records": self.records,
            })

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        """The tensors saved with batch ``name`` (AdvlabError if their file is missing or corrupt)."""
        record = self.records[name]
        if "_tensors" in record:
            return record["_tensors"]
        file = self.tensor_dir / record["tensors"]
        try:
            return load_safetensors(file.read_bytes())
        except (OSError, SafetensorError) as exc:
            raise AdvlabError(f"the tensors of finished batch {name} ({file}) are missing or corrupt; delete "
                              f"{self.path} to start the evaluation over") from exc

    @property
    def tensor_dir(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".tensors")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
