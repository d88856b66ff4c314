"""``ReinforceConfig``: the resolved configuration of a reinforcement run, saved as ``reinforce_config.json``.

Two groups of fields decide the output, and a rerun into the same folder must agree on both:

- *plan* fields, known before any teacher work: policy, N, k, seed, shard size, precision, columns, the image mode
  (every image's conversion, on both sides), the record codec (when not the default), the rows (count and SHA-256
  of their keys) and the teacher members' names. Their hash is the run's :meth:`fingerprint`, stored with every
  shard (configs written before the image mode or the codec were recorded have none, and keep their fingerprint).
- *teacher* fields, known once the teacher is loaded: each member's weight hash, class count and data config.

Everything else (dataset id, revision, fingerprint, weight paths, library versions) is recorded for provenance, and
each member's ``weights_files`` (name, size, times, SHA-256 of every local weight file) let a rerun of a finished run
notice replaced weights without loading the teacher (:func:`hf_dr.models.weights.changed_weights`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

from hf_dr.data.description import PIXEL_LIBRARIES, differences, read_description
from hf_dr.data.run_columns import RunColumns
from hf_dr.errors import ConfigConflictError
from hf_dr.files import read_json, write_json_atomic

CONFIG_FILE = "reinforce_config.json"  # here, not in storage, which reads configs to check a manifest against its own
PLAN_FIELDS = ("format_version", "policy", "num_samples", "topk", "seed", "shard_size", "precision", "columns")
DATASET_PLAN_FIELDS = ("num_rows", "keys_sha256")
MEMBER_PLAN_FIELDS = ("arch", "num_classes", "input_size", "interpolation", "mean", "std", "crop_pct")
MEMBER_TEACHER_FIELDS = ("sha256", "num_classes", "data_config")
FIX = "Use a new output directory (--output-dir), or pass overwrite=True (--overwrite) to delete the old run."


@dataclass
class ReinforceConfig:
    """The resolved configuration of a run (see the module docstring for which fields must match on a rerun).

    Example:
        >>> config = ReinforceConfig(policy={"name": "rrc", "ops": []}, num_samples=4, topk=5, seed=0,
        ...                          shard_size=100, teacher=[{"spec": {"arch": "resnet18"}}])
        >>> rerun = ReinforceConfig(**{**config.to_dict(), "seed": 1})
        >>> rerun.conflicts(config)  # what changed from the recorded run to the rerun
        ['seed: 0 -> 1']
    """

    policy: dict[str, Any]
    num_samples: int
    topk: int
    seed: int
    shard_size: int
    teacher: list[dict[str, Any]]
    precision: str = "fp32"
    columns: RunColumns = field(default_factory=RunColumns)
    image_mode: str | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    codec: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    format_version: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.columns, RunColumns):  # a dict of the file (or a caller): every recorded format
            self.columns = RunColumns.from_dict(self.columns)

    # -- identity ---------------------------------------------------------------------------------------------
    def plan(self) -> dict[str, Any]:
        """The fields that decide the output before any teacher is loaded."""
        plan = {name: getattr(self, name) for name in PLAN_FIELDS}
        plan["columns"] = self.columns.to_dict()
        plan["dataset"] = {k: self.dataset.get(k) for k in DATASET_PLAN_FIELDS}
        plan["teacher"] = [{k: m["spec"].get(k) for k in MEMBER_PLAN_FIELDS} for m in self.teacher]
        for member, planned in zip(self.teacher, plan["teacher"], strict=True):
            if member["spec"].get("temperature") is not None:  # calibrated members; others keep their fingerprint
                planned["temperature"] = member["spec"]["temperature"]
        if self.image_mode is not None:  # absent from configs that predate it: their fingerprint stays theirs
            plan["image_mode"] = self.image_mode
        if self.codec is not None:  # the default codec is left out: runs made before codecs keep their fingerprint
            plan["codec"] = self.codec
        if self.selection is not None:  # N' of N records kept (hf_dr.generate.selection)
            plan["selection"] = self.selection
        return _as_json(plan)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`plan`."""
        return hashlib.sha256(json.dumps(self.plan(), sort_keys=True).encode()).hexdigest()

    def conflicts(self, other: ReinforceConfig) -> list[str]:
        """Plan fields that differ from ``other``'s, as ``"name: other -> self"``."""
        return differences(other.plan(), self.plan())

    def teacher_conflicts(self, other: ReinforceConfig) -> list[str]:
        """Teacher fields (weight hashes, class counts, data configs) that differ from ``other``'s."""
        mine, theirs = self._teacher_fields(), other._teacher_fields()
        if None in (mine, theirs):
            return []
        return differences({"teacher": theirs}, {"teacher": mine})

    def _teacher_fields(self) -> list[dict[str, Any]] | None:
        if any("sha256" not in m for m in self.teacher):
            return None
        return _as_json([{k: m.get(k) for k in MEMBER_TEACHER_FIELDS} for m in self.teacher])

    def version_conflicts(self, other: ReinforceConfig) -> list[str]:
        """Versions of the libraries that decide pixels (:data:`~hf_dr.data.description.PIXEL_LIBRARIES`) that differ
        from ``other``'s: shards made by other versions must not be mixed into one run."""
        if not self.versions or not other.versions:
            return []
        return [f"versions.{name}: {other.versions.get(name)} -> {self.versions.get(name)} (install the recorded "
                "version to resume)"
                for name in PIXEL_LIBRARIES if other.versions.get(name) != self.versions.get(name)]

    def check_compatible(self, existing: ReinforceConfig, output_dir: str) -> None:
        """Raises :class:`ConfigConflictError` unless this config may resume ``existing``'s run."""
        differences = self.conflicts(existing) + self.teacher_conflicts(existing) + self.version_conflicts(existing)
        if differences:
            raise ConfigConflictError(
                f"{output_dir!r} holds a run made with a different configuration ({'; '.join(differences)}); refusing "
                f"to mix them. {FIX}"
            )

    def replay_options(self, records: Any) -> dict[str, Any]:
        """The options :class:`hf_dr.ReinforcedTransform` needs besides this run's ``records`` (a dataset or its
        features): none when they carry the run's description (the policy and class count are read from it, one
        record of them), else this config's policy and class count (shards written before descriptions)."""
        if read_description(records) is not None:
            return {}
        return {"policy": self.policy, "num_classes": self.num_classes}

    # -- files ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _as_json({**asdict(self), "columns": self.columns.to_dict()})

    def save(self, output_dir: str) -> None:
        """Writes ``reinforce_config.json`` atomically."""
        write_json_atomic(os.path.join(output_dir, CONFIG_FILE), self.to_dict())

    @classmethod
    def load(cls, output_dir: str) -> ReinforceConfig | None:
        """The config saved in ``output_dir``, or None if there is none."""
        path = os.path.join(output_dir, CONFIG_FILE)
        if not os.path.exists(path):
            return None
        try:
            return cls(**read_json(path))
        except (TypeError, ValueError) as err:
            raise ConfigConflictError(f"{path} is not a hf-dr reinforce config ({err}). {FIX}") from err


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose code decides the output."""
    import accelerate
    import datasets
    import numpy
    import PIL
    import pyarrow
    import timm
    import torch
    import torchvision

    from hf_dr import __version__

    modules = {"hf_dr": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
               "timm": timm.__version__, "datasets": datasets.__version__, "pyarrow": pyarrow.__version__,
               "accelerate": accelerate.__version__, "numpy": numpy.__version__, "pillow": PIL.__version__}
    return {**modules, "python": platform.python_version()}
