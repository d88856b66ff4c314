"""The description a reinforced dataset carries in its own schema: what the run knows (policy, N, k, classes, column
roles, seed, teacher, source, the library versions that decide pixels), so that nobody retypes it.

Where it lives: the ``id`` of the ``probs`` value feature (``counts`` for the ``sampled`` codec) inside the records
column, as ``hf-dr-run/<version> <JSON>``.
A feature's ``id`` is the one piece of metadata ``datasets`` keeps everywhere a reinforced dataset travels (checked
on datasets 5.2): Parquet shards read by ``load_dataset("parquet", ...)`` and ``Dataset.from_parquet``,
``save_to_disk``/``load_from_disk``, ``.shuffle()``, ``.select()``, ``.train_test_split()``, ``.map()``,
``.select_columns()``, ``.cast_column()`` of another column, ``push_to_hub`` (it is written into the card's
``dataset_info``) and ``load_dataset("org/x")``, streaming included. Arrow schema metadata and
``DatasetInfo.description`` do not survive a Parquet round trip.

Example:
    >>> from hf_dr import create_policy
    >>> from hf_dr.data.schema import reinforcement_features
    >>> policy = create_policy("rrc")
    >>> description = RunDescription(policy=policy.config(), num_samples=4, topk=2, num_classes=10, seed=0,
    ...                              columns={"image": "image", "label": "label", "key": "key"})
    >>> features = with_description(reinforcement_features(policy, topk=2, num_classes=10), description)
    >>> read_description(features).num_samples
    4
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import datasets

from hf_dr.data.codec import RecordCodec
from hf_dr.data.run_columns import RunColumns
from hf_dr.errors import InvalidConfigError

PREFIX = "hf-dr-run/"
FORMAT_VERSION = 1
CODEC_FORMAT_VERSION = 2  # descriptions of records in a codec other than the default: readers before it refuse them
READABLE_VERSIONS = (FORMAT_VERSION, CODEC_FORMAT_VERSION)
PIXEL_LIBRARIES = ("hf_dr", "numpy", "pillow", "torch", "torchvision")  # their code decides the replayed pixels


@dataclass(frozen=True)
class RunDescription:
    """What a reinforcement run knows, as every shard and every dataset made from it carries it.

    Args:
        policy (`dict`): the full policy config (:meth:`hf_dr.AugmentationPolicy.config`).
        num_samples (`int`): N, records per sample.
        topk (`int`): k, stored teacher probabilities per record.
        num_classes (`int`): the teacher's class count.
        seed (`int`): the run seed.
        columns (`RunColumns` or `dict`): the run's columns (:class:`~hf_dr.data.run_columns.RunColumns`; a dict
            of any view it reads). Stored as its :meth:`~hf_dr.data.run_columns.RunColumns.description_view`:
            ``image`` and ``label`` (the source's), ``key`` (the key column of the reinforcement table),
            ``key_source`` (``"column"``, ``"content"`` or ``"path"``; see :mod:`hf_dr.data.keys`) and
            ``reinforcements``.
        class_names (`list[str]`, *optional*): the label names, in label order.
        teacher (`list[dict]`, *optional*): each member's spec and weight hash.
        source (`dict`, *optional*): the source's id, revision, split, row count and keys digest.
        image_mode (`str`, *optional*): the Pillow mode every image was converted to on both sides.
        versions (`dict`, *optional*): versions of the libraries that decide pixels.
        codec (`dict`, *optional*): the :class:`~hf_dr.data.codec.RecordCodec` config of the records (the default,
            stored params and fp16 top-k, when empty).
        selection (`dict`, *optional*): how the ``num_samples`` records were chosen from more
            (:mod:`hf_dr.generate.selection`: ``rule``, ``from``); empty when every generated record is kept.
        format_version (`int`, *optional*): the description's format.
    """

    policy: dict[str, Any]
    num_samples: int
    topk: int
    num_classes: int
    seed: int
    columns: RunColumns
    class_names: list[str] | None = None
    teacher: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    image_mode: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    codec: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.columns, RunColumns):
            object.__setattr__(self, "columns", RunColumns.from_dict(self.columns))

    @property
    def key_column(self) -> str:
        """The reinforcement table's key column."""
        return self.columns.key_name

    @property
    def reinforcements_column(self) -> str:
        """The reinforcement table's records column."""
        return self.columns.reinforcements

    @property
    def record_codec(self) -> RecordCodec:
        """How the records are coded (:class:`~hf_dr.data.codec.RecordCodec`)."""
        return RecordCodec.from_config(self.codec)

    @classmethod
    def from_run(cls, config: dict[str, Any], label_feature: Any = None) -> RunDescription:
        """The description of a run from its resolved config (``ReinforceConfig.to_dict()``), local paths cut to their
        file names (:func:`public_paths`): shards carry no private paths and a resume from another folder writes the
        same bytes. The fields both record are copied from the config: the description is a view of it."""
        config = public_paths(config)
        source = {k: (config.get("dataset") or {}).get(k) for k in ("id", "revision", "split", "num_rows",
                                                                      "keys_sha256")}
        names = list(label_feature.names) if isinstance(label_feature, datasets.ClassLabel) else None
        teacher = [{"spec": m.get("spec"), "sha256": m.get("sha256")} for m in config.get("teacher") or []]
        versions = {k: v for k, v in (config.get("versions") or {}).items() if k in PIXEL_LIBRARIES}
        return cls(policy=config["policy"], num_samples=config["num_samples"], topk=config["topk"],
                   num_classes=config["num_classes"], seed=config["seed"], class_names=names, teacher=teacher,
                   columns=RunColumns.from_dict(config.get("columns")),
                   source=source, image_mode=config.get("image_mode"), versions=versions,
                   codec=dict(config.get("codec") or {}), selection=dict(config.get("selection") or {}))

    def to_id(self) -> str:
        """The text stored in the feature ``id``: format 1, or 2 for records in a codec other than the default (a
        reader that predates codecs would misread them: it refuses format 2, naming the version to install)."""
        values = {**asdict(self), "columns": self.columns.description_view()}
        if not values["codec"]:
            del values["codec"]  # default records: the bytes earlier versions wrote
        if not values["selection"]:
            del values["selection"]
        values["format_version"] = max(self.format_version, CODEC_FORMAT_VERSION if self.codec else FORMAT_VERSION)
        return f"{PREFIX}{values['format_version']} " + json.dumps(values, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_id(cls, text: str) -> RunDescription:
        """Parses :meth:`to_id`'s text; :class:`InvalidConfigError` for another format version or a damaged one."""
        head, _, body = text.partition(" ")
        version = head[len(PREFIX):]
        if version not in [str(v) for v in READABLE_VERSIONS]:
            raise InvalidConfigError(
                f"this reinforced dataset was written in description format {version!r}, this hf-dr reads "
                f"{list(READABLE_VERSIONS)}; install the hf-dr version that made it (recorded: {body[:120]}...)")
        try:
            values = json.loads(body)
            return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
        except (ValueError, TypeError, KeyError) as err:
            raise InvalidConfigError(f"the reinforced dataset's description is damaged ({err}): {body[:120]}") from err


def public_paths(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a run config with local teacher-weight and dataset paths cut to their file names (what is published
    and what shards carry; ``reinforce_config.json`` in the run folder keeps the full paths).

    Example:
        >>> public_paths({"teacher": [{"spec": {"arch": "r18", "weights": "/home/me/t/r18.safetensors"}}],
        ...               "dataset": {"id": "/data/digits.parquet"}})
        {'teacher': [{'spec': {'arch': 'r18', 'weights': 'r18.safetensors'}}], 'dataset': {'id': 'digits.parquet'}}
    """
    content = json.loads(json.dumps(config))
    for member in content.get("teacher") or []:
        weights = (member.get("spec") or {}).get("weights")
        if weights:
            member["spec"]["weights"] = os.path.basename(os.path.normpath(weights))
    ident = (content.get("dataset") or {}).get("id")
    if ident and (os.path.isabs(ident) or os.path.exists(ident)):
        content["dataset"]["id"] = os.path.basename(os.path.normpath(ident))
    return content


LABEL_FIELDS = ("probs", "counts")  # the record field whose value feature carries the description, by codec


def _records_feature(features: datasets.Features) -> tuple[str, Any, str] | None:
    """The records column: its name, its record features and the name of the field carrying the description."""
    for name, feature in features.items():
        inner = getattr(feature, "feature", None)
        if isinstance(inner, dict) and {"params", "ids"} <= set(inner):
            carrier = next((f for f in LABEL_FIELDS if f in inner), None)
            if carrier is not None:
                return name, inner, carrier
    return None


def with_description(features: datasets.Features, description: RunDescription) -> datasets.Features:
    """``features`` with ``description`` stored in the records' ``probs`` value feature (a copy)."""
    found = _records_feature(features)
    if found is None:
        raise InvalidConfigError(f"no reinforcement records column (params, ids, probs) in {list(features)}")
    name, records, carrier = found
    labels = records[carrier]
    value = datasets.Value(labels.feature.dtype, id=description.to_id())
    new_records = {**records, carrier: datasets.List(value, length=labels.length)}
    return datasets.Features({**features, name: datasets.List(new_records)})


def read_description(data: Any) -> RunDescription | None:
    """The description carried by a dataset (map-style or streamed) or its features; None if it carries none.

    Example:
        >>> read_description(datasets.Dataset.from_dict({"x": [1]})) is None
        True
    """
    features = data if isinstance(data, datasets.Features) else getattr(data, "features", None)
    found = _records_feature(features) if features else None
    if found is None:
        return None
    text = getattr(found[1][found[2]].feature, "id", None)
    return RunDescription.from_id(text) if text and text.startswith(PREFIX) else None


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Leaf fields that differ between two JSON-like values, as ``"path: old -> new"``.

    Example:
        >>> differences({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 3]}})
        ['b.c.1: 2 -> 3']
    """
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in differences(a, b, f"{prefix}{i}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {_short(old)} -> {_short(new)}"]


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."
