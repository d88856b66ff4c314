"""What the dataset card says beyond the run's numbers: its Data Fields table, the teacher's recorded metrics and Hub
links, where the source is, and the values its code snippets need (channels, classes, batch size).

Each helper returns plain values for the Jinja template ``cards/reinforced_dataset.md`` (see :mod:`hf_dr.hub.card`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

import datasets

from hf_dr.augment.fields import FRACTION_SCALE
from hf_dr.augment.functional import MODE_CHANNELS
from hf_dr.augment.ops.mixing import CUTMIX, MIXUP
from hf_dr.augment.ops.randaugment import OP_NAMES
from hf_dr.augment.seeded import CHECK_FIELD, PARTNER_FIELD
from hf_dr.data.bundled import bundled_name
from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec
from hf_dr.data.schema import DIGEST_COLUMN

METRICS_FILE = "finetune_metrics.json"  # hf_dr.train.finetune.METRICS_FILE, beside the members' weights
SNIPPET_BATCH = 32
_FRACTIONS = f"fractions of the image side in units of 1/{FRACTION_SCALE}"
PARAM_GROUPS = {  # what each op's stored parameters are (AugmentationPolicy.decode turns them back into params)
    "crop": f"the RandomResizedCrop box (`top`, `left`, `height`, `width`: {_FRACTIONS}) and the horizontal `flip`",
    "randaugment": f"the RandAugment ops (`ops`: indices into {list(OP_NAMES)}) and their signed magnitude bins "
                   "(`magnitudes`)",
    "erasing": f"whether RandomErasing erased (`erase`) and its box ({_FRACTIONS})",
    "mixing": f"`mode` (0 none, {MIXUP} MixUp, {CUTMIX} CutMix), `lam` (the MixUp weight, a fraction), the CutMix "
              "box, `partner_key` (the key of the row mixed in) and `partner` (that row's own stored parameters)",
    CHECK_FIELD: "a 32-bit checksum of the parameters (not stored: the replay draws them again from the seed and "
                 "refuses a record whose draws disagree)",
    PARTNER_FIELD: "the key of the row mixed in",
}


# -- source and teacher links ---------------------------------------------------------------------------------------
def source_text(source: dict[str, Any]) -> dict[str, Any]:
    """How the card names the source: a link for a Hub id, words for a bundled or local one (no link to a page that
    does not exist).

    Example:
        >>> source_text({"id": "digits"})["name"]
        'the bundled `digits` dataset (`hf_dr.data.bundled`)'
        >>> source_text({"id": "org/cifar"})["name"]
        '[`org/cifar`](https://huggingface.co/datasets/org/cifar)'
    """
    ident = source.get("id")
    if ident and bundled_name(ident):
        return {"hub_id": None, "name": f"the bundled `{bundled_name(ident)}` dataset (`hf_dr.data.bundled`)"}
    if ident:
        return {"hub_id": ident, "name": f"[`{ident}`](https://huggingface.co/datasets/{ident})"}
    return {"hub_id": None, "name": "a local image dataset"}


def hub_model_id(spec: dict[str, Any]) -> str | None:
    """The Hub model repo a teacher member's weights came from: ``hf-hub:`` names, and timm pretrained tags (their
    ``hf_hub_id``); None for local weights.

    Example:
        >>> hub_model_id({"arch": "resnet18.a1_in1k"}), hub_model_id({"arch": "resnet18", "weights": "r18.pt"})
        ('timm/resnet18.a1_in1k', None)
    """
    arch = spec.get("arch") or ""
    if spec.get("weights") or arch == "local-dir":
        return None
    if arch.startswith("hf-hub:"):
        return arch[len("hf-hub:"):].split("@")[0] or None
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    return getattr(cfg, "hf_hub_id", None) or None


def hub_model_url(spec: dict[str, Any]) -> str | None:
    """The page of a teacher member's Hub model repo on the Hub the client talks to (``HF_ENDPOINT``): at the commit
    the run recorded for a ``hf-hub:`` member (``/tree/COMMIT``), the repo page for a timm pretrained tag; None for
    local weights.

    Example:
        >>> hub_model_url({"arch": "hf-hub:me/teacher", "revision": "0" * 40}).endswith("/me/teacher/tree/" + "0" * 40)
        True
    """
    from huggingface_hub import constants

    ident = hub_model_id(spec)
    if ident is None:
        return None
    revision = spec.get("revision") if (spec.get("arch") or "").startswith("hf-hub:") else None
    return f"{constants.ENDPOINT}/{ident}" + (f"/tree/{revision}" if revision else "")


def teacher_metrics(teacher: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What ``hf-dr finetune-teacher`` measured of the run's members, read from the ``finetune_metrics.json`` beside
    their weights (``teacher``: the run config's members, with their local weight paths): each member's eval
    metrics (None where nothing was recorded), and the ensemble's and its calibration when the run used exactly
    the members kept by that fine-tuning.

    Example:
        >>> teacher_metrics([{"spec": {"arch": "resnet18"}}])
        {'members': [None], 'ensemble': None, 'calibration': None}
    """
    members: list[dict[str, Any] | None] = []
    files: dict[str, dict[str, Any]] = {}
    for member in teacher:
        weights = (member.get("spec") or {}).get("weights")
        record = None
        if weights and os.path.isfile(weights):
            folder = os.path.dirname(os.path.abspath(weights))
            content = files.setdefault(folder, _read_metrics(os.path.join(folder, METRICS_FILE)))
            record = next((r for r in content.get("members") or [] if _same_file((r.get("spec") or {}).get("weights"),
                                                                                 weights)), None)
        members.append(record.get("metrics") if record else None)
    content = next(iter(files.values()), {}) if len(files) == 1 else {}
    kept = [r for r in content.get("members") or [] if r.get("kept", True)]
    same = bool(kept) and len(kept) == len(teacher) and all(metrics is not None for metrics in members)
    return {"members": members, "ensemble": content.get("ensemble") if same else None,
            "calibration": content.get("calibration") if same else None}


def _read_metrics(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            content = json.load(file)
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _same_file(recorded: str | None, weights: str) -> bool:
    return bool(recorded) and os.path.realpath(recorded) == os.path.realpath(weights)


def metrics_text(metrics: dict[str, Any] | None) -> dict[str, str] | None:
    """Eval metrics as the card prints them (top-1 and ECE in %, NLL, images)."""
    if not metrics or metrics.get("top1") is None:
        return None
    return {"top1": f"{100 * metrics['top1']:.2f}%", "ece": f"{100 * metrics['ece']:.2f}%" if "ece" in metrics else "",
            "nll": f"{metrics['nll']:.3f}" if "nll" in metrics else "", "num_samples": f"{metrics.get('num_samples')}"}


# -- policy and codec -----------------------------------------------------------------------------------------
def policy_rows(policy: dict[str, Any], image_mode: str | None = None) -> list[dict[str, str]]:
    """The policy table's rows; the run's image conversion first (the first step of every view, on both sides)."""
    convert = [{"op": "convert", "params": f"mode={image_mode} (every image, before the ops and at replay: 16-bit "
                "rescaled to 8 bits, transparency dropped)"}] if image_mode else []
    return convert + [{"op": op["op"], "params": ", ".join(f"{k}={_short(v)}" for k, v in sorted(op.items())
                                                         if k != "op")} for op in policy["ops"]]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return str(value)


def codec_text(codec: RecordCodec, topk: int) -> dict[str, str]:
    """How the card describes the records' codec (:mod:`hf_dr.data.codec`)."""
    coded = "probabilities as 8-bit log codes (each within 2.76%; the top-1's distance to 0 or 1 within 5.3%)"
    labels = {
        "fp16-topk": f"its top-{topk} (float16 probabilities)",
        "q8-topk": f"its top-{topk}, {coded}",
        "q8-topk-set": f"its top-{topk}, {coded}, class ids as positions in each image's class set (column "
                       "`classes`)",
        "sampled": f"{codec.draws} classes drawn from it at temperature {codec.temperature} with their counts (an "
                   f"unbiased target: train at temperature {codec.temperature})",
    }[codec.labels]
    params = ("The records store these parameters." if codec.params == "stored" else
              "The records store a 32-bit checksum of them, not the parameters: the replay draws them again and "
              "refuses a record whose draws disagree (install the library versions recorded below if it does).")
    return {"label_text": labels, "params_text": params}


# -- numbers and members --------------------------------------------------------------------------------------
def default_name(repo_id: str, meta: dict[str, Any]) -> str:
    name = (meta["source"].get("id") or repo_id).split("/")[-1]
    return f"{name}+ (reinforced)"


def images_text(num_rows: int | None, num_skipped: int) -> str:
    """The image count the card states: ``"39 decodable of 40"`` when the run skipped undecodable images."""
    return f"{num_rows - num_skipped} decodable of {num_rows}" if num_skipped and num_rows else str(num_rows)


def member_rows(teacher: Sequence[dict[str, Any]], metrics: Sequence[dict[str, Any] | None] | None = None
             ) -> list[dict[str, Any]]:
    members = []
    for index, member in enumerate(teacher):
        spec, data_config = member["spec"], member.get("data_config") or {}
        size = data_config.get("input_size") or spec.get("input_size")
        members.append({
            "arch": spec["arch"], "weights": spec.get("weights") or "(timm pretrained)", "hub_id": hub_model_id(spec),
            "hub_url": hub_model_url(spec), "local": bool(spec.get("weights")) or spec.get("arch") == "local-dir",
            "sha256": member.get("sha256", "?"), "num_classes": member.get("num_classes"),
            "input": f"{size[-2]}x{size[-1]} {data_config.get('interpolation', '')}".strip() if size else "?",
            "temperature": spec.get("temperature"),
            "metrics": metrics_text(metrics[index]) if metrics and index < len(metrics) else None,
        })
    return members


def stats_text(stats: dict[str, Any]) -> dict[str, str]:
    agreement = stats["label_agreement"]
    return {
        "bytes_per_reinforcement": f"{stats['bytes_per_reinforcement']:.1f}",
        "num_bytes": _human_bytes(stats["num_bytes"]), "num_reinforcements": f"{stats['num_reinforcements']:,}",
        "forward_passes": f"{stats['forward_passes']:,}", "mean_top1": f"{stats['mean_top1']:.3f}",
        "label_agreement": f"{100 * agreement:.1f}%" if agreement is not None else None,
    }


def _human_bytes(num_bytes: float) -> str:
    value = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


# -- Data Fields ----------------------------------------------------------------------------------------------------
def data_fields(features: datasets.Features, columns: dict[str, Any], codec: RecordCodec, num_classes: int,
                topk: int, num_samples: int) -> list[dict[str, str]]:
    """The rows of the card's Data Fields table, one per column and one per field of a record, from the features of
    the pushed files (so the table describes exactly what is stored, per codec and layout)."""
    roles = {name: role for role, name in columns.items() if name}
    rows = []
    for name, feature in features.items():
        role = roles.get(name)
        if role == "reinforcements":
            rows.append(_row(name, feature, f"the {num_samples} stored augmentations of the image, one record each"))
            rows.extend(_record_rows(name, feature.feature, codec, num_classes, topk))
        else:
            rows.append(_row(name, feature, _column_meaning(name, role, feature, num_classes)))
    return rows


def _column_meaning(name: str, role: str | None, feature: Any, num_classes: int) -> str:
    if role == "image":
        return "the source image, as the source stored it (the replay converts and augments it)"
    if role == "label":
        names = f" (`ClassLabel` of {len(feature.names)} names)" if isinstance(feature, datasets.ClassLabel) else ""
        return f"the source's label{names}"
    if role == "key":
        return "the sample key every record is bound to (the mixing partners are named by it)"
    if name == DIGEST_COLUMN:
        return ("a digest of the row's encoded image (8 bytes of BLAKE2b), checked before the row is replayed: a "
                "changed image is refused")
    if name == CLASSES_COLUMN:
        return f"the row's set of teacher classes (ids in [0, {num_classes})): the records' `ids` are positions in it"
    return "a column of the source"


def _record_rows(column: str, record: dict[str, Any], codec: RecordCodec, num_classes: int, topk: int
                 ) -> list[dict[str, str]]:
    rows = [_row(f"{column}.params.{group}", feature, PARAM_GROUPS.get(group, f"the parameters of the `{group}` op"))
            for group, feature in record["params"].items()]
    positions = "positions in the row's `classes`" if codec.class_set else f"class ids in [0, {num_classes})"
    if codec.labels == "sampled":
        rows.append(_row(f"{column}.ids", record["ids"], f"the distinct classes drawn from the teacher ({positions})"))
        rows.append(_row(f"{column}.counts", record["counts"],
                         f"how often each was drawn of {codec.draws}; the target is counts / {codec.draws}"))
        return rows
    rows.append(_row(f"{column}.ids", record["ids"], f"the teacher's top-{topk} classes, most probable first "
                                                     f"({positions})"))
    if codec.labels == "fp16-topk":
        meaning = (f"their probabilities (float16); the remaining 1 - sum is spread evenly over the other "
                   f"{num_classes - topk} classes by `hf_dr.densify`")
    else:
        meaning = (f"8-bit log codes of the top-{topk} probabilities, then of the mass outside them "
                   "(`hf_dr.data.label_coding`)")
    rows.append(_row(f"{column}.probs", record["probs"], meaning))
    return rows


def _row(name: str, feature: Any, meaning: str) -> dict[str, str]:
    return {"name": name, "type": feature_type(feature), "meaning": meaning}


def feature_type(feature: Any) -> str:
    """A short type of a ``datasets`` feature for the card.

    Example:
        >>> feature_type(datasets.List(datasets.Value("uint16"), length=5))
        'list<uint16>[5]'
        >>> feature_type({"top": datasets.Value("uint16"), "flip": datasets.Value("bool")})
        'struct{top, flip}'
    """
    if isinstance(feature, dict):
        return "struct{" + ", ".join(feature) + "}"
    if isinstance(feature, (datasets.List, datasets.LargeList, datasets.Sequence)):
        inner = feature_type(feature.feature)
        length = getattr(feature, "length", -1)
        return f"list<{inner}>" + (f"[{length}]" if length is not None and length >= 0 else "")
    if isinstance(feature, datasets.Value):
        return feature.dtype
    if isinstance(feature, datasets.ClassLabel):
        return "class_label"
    return type(feature).__name__.lower()


def compact_json(value: Any) -> str:
    """``value`` as indented JSON with each list of plain values on one line (the card's collapsed run config).

    Example:
        >>> print(compact_json({"input_size": [3, 32, 32], "mean": [0.5]}))
        {
          "input_size": [3, 32, 32],
          "mean": [0.5]
        }
    """
    text = json.dumps(value, indent=2, sort_keys=True)
    def one_line(found: re.Match) -> str:
        return "[" + ", ".join(re.split(r",\n\s*", found.group(1))) + "]"

    return re.sub(r"\[\n\s*([^\[\]{}]*?)\n\s*\]", one_line, text)


# -- snippets -------------------------------------------------------------------------------------------------------
def snippet_values(config: dict[str, Any], num_rows: int | None) -> dict[str, int]:
    """The values the card's code needs to run as written on this dataset: ``in_chans`` from the recorded image mode
    (else the teacher's input channels), and a batch no larger than the split (the timm loader drops a partial one).

    Example:
        >>> snippet_values({"image_mode": "L", "teacher": []}, 48)
        {'in_chans': 1, 'batch_size': 32}
    """
    mode = config.get("image_mode")
    if mode in MODE_CHANNELS:
        channels = MODE_CHANNELS[mode]
    else:
        teacher = config.get("teacher") or [{}]
        size = (teacher[0].get("data_config") or {}).get("input_size") or (teacher[0].get("spec") or {}).get(
            "input_size") or (3,)
        channels = int(size[0])
    return {"in_chans": channels, "batch_size": max(1, min(SNIPPET_BATCH, num_rows or SNIPPET_BATCH))}
