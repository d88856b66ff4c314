"""How a run stores each record: :class:`RecordCodec`, a parameter mode and a label codec, chosen at reinforcement
time and recorded in the data's description (:mod:`hf_dr.data.description`), so every reader decodes it alone. The
codec holds both directions: a run stores what its ``encode_*`` methods give, readers use its ``decode_*`` methods.

Parameter modes:

- ``stored`` (the default): the encoded params of every record (:meth:`hf_dr.AugmentationPolicy.encode`).
- ``seeded``: a 32-bit checksum of them (and the mixing partner's key), drawn again at replay
  (:mod:`hf_dr.augment.seeded`); a replay whose draws disagree is refused, naming the record.

Label codecs (what a record stores; what :func:`hf_dr.densify` does with the mass it does not store):

- ``fp16-topk`` (the default): the top-k ids and their float16 probabilities; ``1 - sum`` is spread evenly over the
  other classes.
- ``q8-topk``: the top-k ids, probabilities and the mass outside them as 8-bit log codes (``k + 1`` bytes,
  :mod:`hf_dr.data.label_coding`: each within 2.76% before the top-k is rescaled to the stored leftover); the
  leftover as ``fp16-topk``.
- ``q8-topk-set``: as ``q8-topk``, the ids as positions in the row's set of classes (column ``classes``, lossless).
- ``sampled``: ``draws`` classes drawn from the teacher at ``temperature``, as distinct ids (positions in the row's
  set) and their counts; the target ``counts / draws`` is unbiased and sums to one: no leftover.

A ``sampled`` target estimates the teacher's distribution at the recorded temperature: train at that temperature
(the loss then leaves the target as it is, see :func:`hf_dr.soft_target_loss`).

Examples are in :class:`RecordCodec`'s docstring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from hf_dr.augment.policy import AugmentationPolicy, Params
from hf_dr.augment.seeded import recompute_params, seeded_features, seeded_record
from hf_dr.data.label_coding import class_sets, dequantize, dequantize_topk, draw_classes, quantize_topk
from hf_dr.data.soft_labels import sparsify
from hf_dr.errors import InvalidConfigError

PARAM_MODES = ("stored", "seeded")
LABEL_CODECS = ("fp16-topk", "q8-topk", "q8-topk-set", "sampled")
CLASSES_COLUMN = "classes"  # the per-image class set of the class-set codecs, a row-level column
MAX_DRAWS = 255  # counts are uint8


@dataclass(frozen=True)
class RecordCodec:
    """How records store params and labels (see the module docstring).

    Args:
        params (`str`, *optional*, defaults to ``"stored"``): ``"stored"`` or ``"seeded"``.
        labels (`str`, *optional*, defaults to ``"fp16-topk"``): one of :data:`LABEL_CODECS`.
        draws (`int`, *optional*): ``sampled`` only: classes drawn per record (m, at most 255); the run's k by default.
        temperature (`float`, *optional*): ``sampled`` only: the teacher temperature the classes are drawn at
            (1.0 by default); students train at this temperature.

    Example:
        >>> codec = RecordCodec(params="seeded", labels="q8-topk-set")
        >>> RecordCodec.from_config(codec.config()) == codec, codec.class_set
        (True, True)
        >>> RecordCodec().config()
        {'params': 'stored', 'labels': 'fp16-topk'}
        >>> RecordCodec(labels="fp16-topk-set")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: ...
    """

    params: str = "stored"
    labels: str = "fp16-topk"
    draws: int | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        if self.params not in PARAM_MODES:
            raise InvalidConfigError(f"param_mode should be one of {list(PARAM_MODES)}, but got {self.params!r}.")
        if self.labels not in LABEL_CODECS:
            raise InvalidConfigError(f"label_codec should be one of {list(LABEL_CODECS)}, but got {self.labels!r}.")
        if self.labels != "sampled" and (self.draws is not None or self.temperature is not None):
            raise InvalidConfigError(f"label_draws and label_temperature belong to the 'sampled' label codec, not "
                                     f"{self.labels!r}; leave them out or pass label_codec='sampled'.")
        if self.draws is not None and not (isinstance(self.draws, int) and 1 <= self.draws <= MAX_DRAWS):
            raise InvalidConfigError(f"label_draws should be an integer in [1, {MAX_DRAWS}], but got {self.draws!r}.")
        if self.temperature is not None and not self.temperature > 0:
            raise InvalidConfigError(f"label_temperature should be > 0, but got {self.temperature!r}.")
        if self.temperature is not None:  # 1 and 1.0 are one codec (and one fingerprint)
            object.__setattr__(self, "temperature", float(self.temperature))

    @classmethod
    def parse(cls, text: str, temperature: float | None = None) -> RecordCodec:
        """A codec from its short name ``[PARAMS/]LABELS[:DRAWS]`` (``"seeded/sampled:10"``), as the demo's
        ``--codecs`` flag takes it; ``temperature`` is the ``sampled`` codec's.

        Example:
            >>> RecordCodec.parse("seeded/sampled:10", temperature=2.0).config()
            {'params': 'seeded', 'labels': 'sampled', 'draws': 10, 'temperature': 2.0}
            >>> RecordCodec.parse("q8-topk").name
            'stored/q8-topk'
        """
        params, _, labels = text.rpartition("/")
        labels, _, draws = labels.partition(":")
        try:
            draws_value = int(draws) if draws else None
        except ValueError as err:
            raise InvalidConfigError(f"codec {text!r}: the draws after ':' should be an integer") from err
        sampled = labels == "sampled"
        return cls(params or "stored", labels, draws_value, temperature if sampled else None)

    @property
    def name(self) -> str:
        """The short name :meth:`parse` reads."""
        return f"{self.params}/{self.labels}" + (f":{self.draws}" if self.draws else "")

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> RecordCodec:
        """The codec of a recorded :meth:`config` (None, as data made before codecs recorded, is the default)."""
        try:
            return cls(**(config or {}))
        except TypeError as err:
            raise InvalidConfigError(f"not a record codec config: {config!r} ({err})") from err

    def resolved(self, topk: int) -> RecordCodec:
        """This codec with the ``sampled`` defaults filled in for a run of ``topk``."""
        if self.labels != "sampled":
            return self
        return RecordCodec(self.params, self.labels, self.draws or topk, self.temperature or 1.0)

    def config(self) -> dict[str, Any]:
        """A JSON dict of the codec (unset options left out)."""
        values = {"params": self.params, "labels": self.labels, "draws": self.draws, "temperature": self.temperature}
        return {k: v for k, v in values.items() if v is not None}

    @property
    def is_default(self) -> bool:
        return self == RecordCodec()

    @property
    def class_set(self) -> bool:
        """Whether records code their ids against the row's :data:`CLASSES_COLUMN`."""
        return self.labels in ("q8-topk-set", "sampled")

    @property
    def label_field(self) -> str:
        """The record field holding the label values: ``counts`` (``sampled``) or ``probs``."""
        return "counts" if self.labels == "sampled" else "probs"

    @property
    def target_temperature(self) -> float | None:
        """The temperature a decoded target already has (``sampled``), or None (any temperature may be applied)."""
        return (self.temperature or 1.0) if self.labels == "sampled" else None

    # -- schema -----------------------------------------------------------------------------------------------
    def record_features(self, policy: AugmentationPolicy, topk: int, num_classes: int, num_samples: int | None = None
                        ) -> dict[str, Any]:
        """Features of one record: ``params``, ``ids`` and ``probs`` (``fp16-topk``/``q8-*``) or ``counts``."""
        params = self.params_features(policy)
        if self.labels == "sampled":
            index = position_dtype(num_classes, None if num_samples is None else num_samples * (self.draws or topk))
            return {"params": params, "ids": datasets.List(datasets.Value(index)),
                    "counts": datasets.List(datasets.Value("uint8"))}
        if self.class_set:
            ids = position_dtype(num_classes, None if num_samples is None else num_samples * topk)
        else:
            ids = class_id_dtype(num_classes)
        if self.labels == "fp16-topk":
            probs = datasets.List(datasets.Value("float16"), length=topk)
        else:  # the top-k codes, then the code of the mass outside them
            probs = datasets.List(datasets.Value("uint8"), length=topk + 1)
        return {"params": params, "ids": datasets.List(datasets.Value(ids), length=topk), "probs": probs}

    def params_features(self, policy: AugmentationPolicy) -> dict[str, Any]:
        """Features of a record's params: the policy's own (``stored``), or the checksum and, for mixing policies,
        the partner's key (``seeded``, :func:`hf_dr.augment.seeded.seeded_features`)."""
        return policy.features() if self.params == "stored" else seeded_features(policy)

    def row_features(self, num_classes: int) -> dict[str, Any]:
        """Row-level features the codec adds: the class set of the class-set codecs."""
        if not self.class_set:
            return {}
        return {CLASSES_COLUMN: datasets.List(datasets.Value(class_id_dtype(num_classes)))}

    def check_features(self, record: dict[str, Any], columns: Sequence[str]) -> None:
        """Raises :class:`InvalidConfigError` naming the field when a records column's features (``record``, one
        record's) or the table's ``columns`` contradict this codec: data whose description is missing or was
        replaced would otherwise be misread (8-bit codes taken for probabilities, set positions for class ids)."""
        problems = []
        other = "probs" if self.label_field == "counts" else "counts"
        values = record.get(self.label_field)
        expected = "float16" if self.labels == "fp16-topk" else "uint8"
        dtype = str(getattr(getattr(values, "feature", None), "dtype", ""))
        if values is None or other in record:
            problems.append(f"the records hold {sorted(record)}, where this codec stores {self.label_field!r}")
        elif dtype != expected and not (expected == "float16" and dtype.startswith("float")):  # float32: a cast
            problems.append(f"{self.label_field!r} holds {dtype}, where this codec stores {expected}")
        seeded = isinstance(record.get("params"), dict) and "check" in record["params"]
        if seeded != (self.params == "seeded"):
            problems.append(f"the params are {'seeded' if seeded else 'stored'}, where this codec's are {self.params}")
        if (CLASSES_COLUMN in columns) != self.class_set:
            problems.append(f"the table {'has' if CLASSES_COLUMN in columns else 'lacks'} a {CLASSES_COLUMN!r} column")
        if problems:
            raise InvalidConfigError(
                f"these records do not fit their codec {self.name!r} ({'; '.join(problems)}): the data's hf-dr "
                "description is missing or belongs to other data, so they would be misread. Load the reinforced "
                "dataset as it was written (hf_dr.load_run_records / load_reinforced), with its features.")

    # -- writing ----------------------------------------------------------------------------------------------
    def encode_params(self, policy: AugmentationPolicy, params: Params) -> dict[str, Any]:
        """What a record stores of drawn ``params`` (:meth:`params_features`): :meth:`AugmentationPolicy.encode`'s
        values, or their checksum (``seeded``, :func:`hf_dr.augment.seeded.seeded_record`)."""
        encoded = policy.encode(params)
        return encoded if self.params == "stored" else seeded_record(policy, encoded)

    def encode_labels(self, probs: torch.Tensor, topk: int, seed: int,
                      views: Callable[[], Sequence[tuple[str, int]]]) -> tuple[Any, Any]:
        """The stored labels of a batch of teacher ``probs [B, C]``: class ids and their values (probabilities as
        float16 or 8-bit codes, or counts), as ``[B, k]`` arrays or, for ``sampled``, lists of per-record arrays.
        ``views()`` gives the records' ``(key, index)``, which seed the sampled codec's draws (called for that codec
        only). Class-set codecs code these ids against each row's set afterwards (:meth:`encode_class_sets`)."""
        if self.labels == "sampled":
            return draw_classes(probs, self.draws or topk, self.temperature or 1.0, seed, views())
        ids, values = sparsify(probs, topk)
        ids, values = ids.cpu().numpy(), values.cpu().float().numpy()
        return ids, (values.astype(np.float16) if self.labels == "fp16-topk" else quantize_topk(values))

    def encode_class_sets(self, ids: np.ndarray, row_offsets: np.ndarray
                          ) -> tuple[list[np.ndarray] | None, np.ndarray]:
        """Rows' flat class ``ids`` (``row_offsets``: ``R + 1`` offsets) as stored: for the class-set codecs each
        row's set (:data:`CLASSES_COLUMN`) and the ids as positions in it
        (:func:`hf_dr.data.label_coding.class_sets`), which :meth:`decode_labels` maps back; else ``(None, ids)``."""
        return class_sets(ids, row_offsets) if self.class_set else (None, ids)

    def encode_row(self, policy: AugmentationPolicy, params: Sequence[Params], probs: torch.Tensor, topk: int,
                   seed: int, key: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One row's records and row-level columns (:meth:`row_features`) as Python values, from the drawn params
        and teacher ``probs [N, C]`` of its N records: what a run stores for them, coded by the same
        :meth:`encode_params`, :meth:`encode_labels` and :meth:`encode_class_sets` (for rows built outside a run,
        as ``datasets.Dataset.from_list`` takes them).

        Example:
            >>> from hf_dr import create_policy
            >>> from hf_dr.augment.seeding import generator_for
            >>> policy, codec = create_policy("rrc"), RecordCodec(labels="q8-topk-set")
            >>> params = [policy.sample_params((32, 32), generator_for(0, "a", j)) for j in range(2)]
            >>> records, columns = codec.encode_row(policy, params, torch.tensor([[0.1, 0.9], [0.2, 0.8]]), 1, 0, "a")
            >>> [r["ids"] for r in records], columns  # class 1, as position 0 of the row's set
            ([[0], [0]], {'classes': [1]})
        """
        ids, values = self.encode_labels(probs, topk, seed, lambda: [(key, j) for j in range(len(params))])
        lengths = [len(i) for i in ids]
        sets, positions = self.encode_class_sets(np.concatenate([np.asarray(i, dtype=np.int64) for i in ids]),
                                                 np.asarray([0, sum(lengths)]))
        starts = np.cumsum([0, *lengths]).tolist()
        records = [{"params": self.encode_params(policy, p), "ids": positions[a:b].tolist(),
                    self.label_field: np.asarray(v).tolist()}
                   for p, a, b, v in zip(params, starts[:-1], starts[1:], values, strict=True)]
        return records, ({} if sets is None else {CLASSES_COLUMN: sets[0].tolist()})

    # -- reading ----------------------------------------------------------------------------------------------
    def decode_params(self, policy: AugmentationPolicy, stored: dict[str, Any], seed: int, key: str, index: int,
                      image_size: tuple[int, int] | None, pool_size: int | None = None,
                      partner_size: tuple[int, int] | None = None) -> Params:
        """Record ``index`` of ``key``'s params from what :meth:`encode_params` stored: decoded (``stored``), or drawn
        again from the run's ``seed`` and the image's size (mixing: the partner pool's size and the partner's) and
        checked against the stored checksum (``seeded``, :func:`hf_dr.augment.seeded.recompute_params`)."""
        if self.params == "stored":
            return policy.decode(stored)
        if image_size is None:
            raise InvalidConfigError(f"the records of key {key!r} store seeded params, drawn again from the image's "
                                     "size: pass image_size=(height, width), or call replay(image, key).")
        return recompute_params(policy, stored, seed, key, index, image_size, pool_size, partner_size)

    def decode_labels(self, stored: dict[str, Any], classes: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """A stored record's class ids (``int64``) and their target probabilities (``float32``), given its row's
        class set for the class-set codecs."""
        ids = np.asarray(stored["ids"], dtype=np.int64)
        if self.class_set:
            if classes is None:
                raise InvalidConfigError(f"records of the {self.labels!r} codec code their ids against the row's "
                                         f"{CLASSES_COLUMN!r} column, and none was given; keep that column.")
            classes = np.asarray(classes, dtype=np.int64)
            if ids.size and int(ids.max()) >= len(classes):
                raise InvalidConfigError(f"a record refers to class {int(ids.max())} of a {len(classes)}-class set: "
                                         f"the {CLASSES_COLUMN!r} column is not this row's.")
            ids = classes[ids]
        if self.labels == "sampled":
            counts = np.asarray(stored["counts"], dtype=np.float32)
            return ids, counts / max(float(counts.sum()), 1.0)
        if self.labels == "fp16-topk":
            return ids, np.asarray(stored["probs"], dtype=np.float32)
        return ids, dequantize_topk(stored["probs"])

    def first_labels(self, table: pa.Table, records_column: str) -> tuple[np.ndarray, np.ndarray]:
        """Every record's first class id and its target probability (the teacher's top-1, or the most drawn class),
        read from the Arrow ``table`` of rows (its records column, and its class set for the class-set codecs)."""
        column = table.column(records_column).combine_chunks()
        records = pc.list_flatten(column)
        first_id = _numpy(pc.list_element(pc.struct_field(records, "ids"), 0)).astype(np.int64)
        first = _numpy(pc.list_element(pc.struct_field(records, self.label_field), 0))
        if self.class_set:
            classes = table.column(CLASSES_COLUMN).combine_chunks()
            lengths = _numpy(pc.fill_null(pc.list_value_length(column), 0))
            starts = np.repeat(_numpy(classes.offsets)[:-1], lengths)
            first_id = _numpy(classes.values)[starts + first_id].astype(np.int64)
        if self.labels == "sampled":
            draws = _numpy(pc.list_value_length(pc.struct_field(records, "counts")))  # distinct classes per record
            totals = np.add.reduceat(_numpy(pc.list_flatten(pc.struct_field(records, "counts"))).astype(np.float64),
                                     np.concatenate([[0], np.cumsum(draws)[:-1]])) if len(draws) else draws
            return first_id, first.astype(np.float64) / np.maximum(totals, 1)
        return first_id, (first.astype(np.float64) if self.labels == "fp16-topk" else dequantize(first).astype(
            np.float64))


def _numpy(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def class_id_dtype(num_classes: int) -> str:
    """The narrowest unsigned type holding every class id.

    Example:
        >>> class_id_dtype(1000), class_id_dtype(100_000)
        ('uint16', 'uint32')
    """
    return "uint16" if num_classes <= np.iinfo(np.uint16).max + 1 else "uint32"


def position_dtype(num_classes: int, entries: int | None) -> str:
    """The type of positions in a row's class set: ``uint8`` when no set can exceed 256 classes (fewer classes, or
    fewer stored ids per row), else the class id type.

    Example:
        >>> position_dtype(10, None), position_dtype(1000, 400 * 10), position_dtype(1000, 20 * 5)
        ('uint8', 'uint16', 'uint8')
    """
    bound = num_classes if entries is None else min(num_classes, entries)
    return "uint8" if bound <= 256 else class_id_dtype(num_classes)
