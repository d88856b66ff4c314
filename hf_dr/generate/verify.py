"""Verify that a reinforced dataset replays what its teacher saw: replay stored augmentations (seeded ones drawn
again and checked), run the teacher again, compare with the stored labels as the run's codec stored them
(:mod:`hf_dr.data.codec`). Also compares recorded library versions and source keys with today's."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np
import torch

from hf_dr.augment.functional import to_pil
from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.augment.registry import policy_from_config
from hf_dr.augment.seeded import PARTNER_FIELD
from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec
from hf_dr.data.keys import KeyIndex
from hf_dr.data.label_coding import RELATIVE_BOUND, tempered, unexplained_draws
from hf_dr.data.schema import REINFORCEMENTS_COLUMN
from hf_dr.data.soft_labels import densify
from hf_dr.data.source_keys import keys_sha256, scan_keys
from hf_dr.errors import RecomputedParamsError, TeacherError
from hf_dr.generate.render import policy_for_view, render_view
from hf_dr.generate.run_config import ReinforceConfig, library_versions
from hf_dr.models.teacher import Teacher, create_teacher

DRIFT_SENSITIVE = ("torch", "torchvision", "pillow", "hf_dr")
# float16 storage rounds probabilities by at most 2.5e-4; half-precision teachers add ~1e-2 run to run
PROB_TOLERANCE = {"fp32": 0.005, "bf16": 0.05, "fp16": 0.05}


@dataclass
class VerifyReport:
    """What :func:`verify` found. ``passed`` is False when agreement falls below the thresholds."""

    checked: int
    top1_agreement: float
    max_abs_prob_diff: float
    mean_kl: float
    min_agreement: float
    prob_tolerance: float
    version_changes: list[str] = field(default_factory=list)
    source_changes: list[str] = field(default_factory=list)
    teacher_changes: list[str] = field(default_factory=list)
    params_mismatches: list[str] = field(default_factory=list)
    worst_pair: str | None = None

    @property
    def passed(self) -> bool:
        return (not self.params_mismatches and self.top1_agreement >= self.min_agreement
                and self.max_abs_prob_diff <= self.prob_tolerance)

    @property
    def likely_cause(self) -> str | None:
        """The most likely reason for a failure, from what changed since generation."""
        if self.passed:
            return None
        if self.params_mismatches:
            return (f"{len(self.params_mismatches)} seeded record(s) draw other params than the run did; the first: "
                    f"{self.params_mismatches[0]}")
        if self.teacher_changes:
            return "the teacher differs from the one that labelled the data: " + "; ".join(self.teacher_changes)
        drift = [c for c in self.version_changes if c.split(":")[0] in DRIFT_SENSITIVE]
        if drift:
            return f"library drift changed the replayed images: {'; '.join(drift)} (install the recorded versions)"
        if self.source_changes:
            return "the source rows changed since reinforcement: " + "; ".join(self.source_changes)
        return ("the replayed images differ from the ones the teacher saw (an augmentation op or its settings "
                "changed, or images were re-encoded or no longer match their keys), or the stored labels were "
                f"changed; the worst pair: {self.worst_pair}")

    def summary(self) -> str:
        lines = [
            f"checked {self.checked} (sample, reinforcement) pairs",
            f"top-1 agreement {self.top1_agreement:.4f} (needs >= {self.min_agreement})",
            f"max |p_stored - p_teacher| on stored classes, beyond the codec's bound {self.max_abs_prob_diff:.4f} "
            f"(needs <= {self.prob_tolerance})",
            f"mean KL(stored || teacher) {self.mean_kl:.5f}",
        ]
        lines += [f"version changed: {c}" for c in self.version_changes]
        lines += [f"source changed: {c}" for c in self.source_changes]
        lines += [f"teacher changed: {c}" for c in self.teacher_changes]
        if not self.passed and self.worst_pair:
            lines.append(f"worst pair: {self.worst_pair}")
        lines.append("PASSED" if self.passed else f"FAILED: {self.likely_cause}")
        return "\n".join(lines)


def verify(
    reinforcements: datasets.Dataset,
    images: datasets.Dataset,
    config: ReinforceConfig,
    teacher: Teacher | None = None,
    num_pairs: int = 64,
    seed: int = 0,
    policy: AugmentationPolicy | None = None,
    min_agreement: float = 0.98,
    prob_tolerance: float | None = None,
    samples: int | None = None,
) -> VerifyReport:
    """Replays ``num_pairs`` random (sample, reinforcement) pairs and compares the teacher's output with the stored
    one (``hf-dr verify``, whose ``--num-pairs`` this is).

    Args:
        reinforcements (`datasets.Dataset`): rows with ``key`` and ``reinforcements`` (see ``load_run_records``).
        images (`datasets.Dataset`): the source images (columns as recorded in ``config.columns``).
        config (`ReinforceConfig`): the run's recorded config.
        teacher (`Teacher`, *optional*): defaults to the recorded members (their weights must be reachable).
        num_pairs (`int`, *optional*, defaults to 64): pairs to check.
        seed (`int`, *optional*, defaults to 0): which pairs.
        policy (`AugmentationPolicy`, *optional*): replay with this policy instead of the recorded one.
        min_agreement (`float`, *optional*, defaults to 0.98): least top-1 agreement that passes.
        prob_tolerance (`float`, *optional*): largest probability difference that passes; defaults to 0.005 for a
            run labelled in fp32 and 0.05 in bf16/fp16.
        samples (`int`, *optional*): the old name of ``num_pairs``, deprecated.

    Example:
        >>> import os, tempfile, safetensors.torch, timm
        >>> from hf_dr import load_run_records, reinforce
        >>> from hf_dr.data.bundled import load_bundled
        >>> folder = tempfile.mkdtemp()
        >>> digits = load_bundled("digits", "train").select(range(6))
        >>> weights = os.path.join(folder, "teacher.safetensors")
        >>> model = timm.create_model("test_resnet", num_classes=10)
        >>> safetensors.torch.save_file(model.state_dict(), weights)
        >>> teacher = {"arch": "test_resnet", "weights": weights, "input_size": [3, 32, 32]}
        >>> run = reinforce(digits, [teacher], "rrc", num_samples=2, topk=3, seed=0,
        ...                 output_dir=os.path.join(folder, "run"), num_workers=0, progress=False)
        >>> report = verify(load_run_records(run), digits, ReinforceConfig.load(run), num_pairs=4)
        >>> report.passed, report.checked
        (True, 4)
    """
    if samples is not None:
        warnings.warn("verify(samples=) is deprecated: pass num_pairs= (the --num-pairs of hf-dr verify)",
                      FutureWarning, stacklevel=2)
        num_pairs = samples
    teacher = teacher or create_teacher(recorded_members(config))
    prob_tolerance = PROB_TOLERANCE.get(config.precision, 0.05) if prob_tolerance is None else prob_tolerance
    policy = policy or policy_from_config(config.policy)
    codec = RecordCodec.from_config(config.codec)
    columns = config.columns
    image_column = columns.image
    keys = scan_keys(images, image_column, columns.key, columns.key_source)
    rows = KeyIndex(keys, where="the source images", fix=f"load the source revision "
                    f"{config.dataset.get('revision')!r} of {config.dataset.get('id')!r}")
    pairs = _pick_pairs(reinforcements, columns.key_name, config.num_samples, num_pairs, seed)
    checked, stored, teacher_probs, mismatches, rows_checked = [], [], [], [], []
    for row, key, index, record, classes in pairs:
        image = images[rows.row(key)][image_column]
        try:
            params = _params(policy, codec, config, record["params"], key, index, image,
                             lambda k: images[rows.row(k)][image_column])
        except RecomputedParamsError as err:
            mismatches.append(str(err))
            continue
        partner_key = policy.partner_key(params)
        partner = None if partner_key is None else images[rows.row(partner_key)][image_column]
        views = [render_view(policy_for_view(policy, v.interpolation), image, params, v, partner,
                             image_mode=config.image_mode)[None]
                 for v in teacher.views]
        with torch.inference_mode():
            teacher_probs.append(teacher(views)[0])
        checked.append((key, index))
        rows_checked.append(row)
        stored.append(codec.decode_labels(record, classes))
    probs = torch.stack(teacher_probs) if teacher_probs else torch.zeros(0, teacher.num_classes)
    names = [_pair_name(at, checked, rows_checked, stored, probs) for at in range(len(checked))]
    report = _report(checked, stored, probs, config, codec, teacher, keys, min_agreement, prob_tolerance, names)
    report.params_mismatches = mismatches
    return report


def recorded_members(config: ReinforceConfig, where: str | None = None) -> list[dict[str, Any]]:
    """The member specs a run recorded, to load its teacher again. ``where`` names a published dataset: there a
    member with local weights (recorded by file name only) is refused with :class:`TeacherError`, naming it and how
    to publish it (``hf-dr push-model``, then a ``hf-hub:`` member) or to verify against a local copy (``--teacher``).
    """
    specs = [m["spec"] for m in config.teacher]
    local = [(i, s) for i, s in enumerate(specs) if s.get("weights")]
    if where is not None and local:
        index, spec = local[0]
        raise TeacherError(
            f"{where}: teacher member {index} ({spec['arch']}) is the local file {spec['weights']!r}, which is not on "
            f"the Hub{f' ({len(local)} such members)' if len(local) > 1 else ''}, so the dataset cannot be verified "
            "from the Hub. Its author can publish it with `hf-dr push-model --checkpoint FILE ORG/NAME` and reinforce "
            "with --teacher hf-hub:ORG/NAME; with a copy of the weights, pass --teacher ARCH=FILE (or "
            "--teacher-spec).")
    return specs


def _params(policy: AugmentationPolicy, codec: RecordCodec, config: ReinforceConfig, stored: dict[str, Any], key: str,
            index: int, image: Any, partner_image: Any) -> dict[str, Any]:
    """A record's params: decoded, or drawn again from the image sizes (seeded) and checked against the checksum."""
    if codec.params == "stored":
        return codec.decode_params(policy, stored, config.seed, key, index, None)
    partner_key = stored.get(PARTNER_FIELD)
    partner_size = _size(partner_image(partner_key), config.image_mode) if partner_key else None
    return codec.decode_params(policy, stored, config.seed, key, index, _size(image, config.image_mode),
                               config.dataset.get("num_rows"), partner_size)


def _size(image: Any, image_mode: str | None) -> tuple[int, int]:
    image = to_pil(image, image_mode)
    return image.height, image.width


def _pick_pairs(reinforcements: datasets.Dataset, key_column: str, num_samples: int, samples: int, seed: int
                ) -> list[tuple[int, str, int, dict[str, Any], Any]]:
    """``samples`` distinct (row, key, record index, record, row class set) draws from every row's ``num_samples``
    records, so a check larger than the row count covers several records of a row."""
    generator = np.random.default_rng(seed)
    table = reinforcements.with_format("arrow")
    total = len(reinforcements) * num_samples
    flat = generator.choice(total, size=min(samples, total), replace=False)
    pairs = []
    for row, index in sorted(divmod(int(f), num_samples) for f in flat):
        record_row = table[row]
        records = record_row.column(REINFORCEMENTS_COLUMN)[0].values
        classes = record_row.column(CLASSES_COLUMN)[0].as_py() if CLASSES_COLUMN in record_row.column_names else None
        pairs.append((row, record_row.column(key_column)[0].as_py(), index, records[index].as_py(), classes))
    return pairs


def _report(checked: list[tuple[str, int]], stored: list[tuple[np.ndarray, np.ndarray]], teacher_probs: torch.Tensor,
            config: ReinforceConfig, codec: RecordCodec, teacher: Teacher, keys: list[str], min_agreement: float,
            prob_tolerance: float, names: list[str]) -> VerifyReport:
    """Stored labels against the teacher's: its probabilities (top-k codecs, less the 8-bit codes' stated bound) or
    the classes drawn again from them with the run's generators (``sampled``)."""
    num_classes = teacher_probs.shape[-1]
    if codec.labels == "sampled":
        return _sampled_report(checked, stored, teacher_probs, config, codec, teacher, keys, min_agreement,
                               prob_tolerance, names)
    reference = teacher_probs.double()
    coded = codec.labels in ("q8-topk", "q8-topk-set")
    diffs, agree, kls = [], [], []
    for (ids, probs), ref in zip(stored, reference, strict=True):
        at = ref[torch.from_numpy(ids)]
        allowed = torch.zeros_like(at)
        if coded:  # the 8-bit codes' stated bound (hf_dr.data.label_coding.dequantize_topk)
            leftover = min(max(1.0 - float(at.sum()), 0.0), 0.99)
            allowed = (2 * RELATIVE_BOUND + RELATIVE_BOUND * leftover / (1 - leftover)) * at
        diffs.append(float(((torch.from_numpy(probs).double() - at).abs() - allowed).clamp_min(0).max()))
        agree.append(int(ref.argmax()) == int(ids[0]))
        kls.append(_kl(densify(ids, probs, num_classes).double(), ref))
    return _verdict(names, agree, diffs, kls, config, teacher, keys, min_agreement, prob_tolerance)


def _sampled_report(checked: list[tuple[str, int]], stored: list[tuple[np.ndarray, np.ndarray]],
                    teacher_probs: torch.Tensor, config: ReinforceConfig, codec: RecordCodec, teacher: Teacher,
                    keys: list[str], min_agreement: float, prob_tolerance: float, names: list[str]) -> VerifyReport:
    """Sampled labels: a record agrees when every stored draw is explained by the teacher's distribution, drawn again
    with the run's generators (:func:`~hf_dr.data.label_coding.unexplained_draws`); the probability difference is
    the share of unexplained draws."""
    counts = np.zeros((len(stored), teacher_probs.shape[-1]))
    for row, (ids, probs) in enumerate(stored):
        counts[row, ids] = np.rint(probs * codec.draws)
    unexplained = unexplained_draws(teacher_probs, counts, codec.draws, codec.temperature, config.seed, checked,
                                    prob_tolerance) if checked else np.zeros(0)
    reference = torch.from_numpy(tempered(teacher_probs, codec.temperature)) if checked else teacher_probs.double()
    kls = [_kl(torch.from_numpy(c / codec.draws), ref) for c, ref in zip(counts, reference, strict=True)]
    return _verdict(names, list(unexplained == 0), [float(u) / codec.draws for u in unexplained], kls, config,
                    teacher, keys, min_agreement, prob_tolerance)


def _pair_name(at: int, checked: list[tuple[str, int]], rows: list[int], stored: list[tuple[np.ndarray, np.ndarray]],
               teacher_probs: torch.Tensor) -> str:
    """Checked pair ``at`` named for the report: its row, key and record, its stored top classes and the teacher's
    probabilities of them now."""
    (key, index), (ids, probs) = checked[at], stored[at]
    shown = ", ".join(f"class {int(c)}: stored {float(p):.4f}, teacher {float(teacher_probs[at, int(c)]):.4f}"
                      for c, p in list(zip(ids, probs, strict=True))[:3])
    return f"row {rows[at]} (key {key!r}), record {index}: {shown}"


def _kl(target: torch.Tensor, reference: torch.Tensor) -> float:
    return float((target * (target.clamp_min(1e-12).log() - reference.clamp_min(1e-12).log())).sum())


def _verdict(names: list[str], agree: list[bool], diffs: list[float], kls: list[float], config: ReinforceConfig,
             teacher: Teacher, keys: list[str], min_agreement: float, prob_tolerance: float) -> VerifyReport:
    """The report of the checked pairs (``names``): their agreement and probability differences, and the pair that
    differs most beyond the tolerance (else the first that disagrees) named as ``worst_pair``."""
    mean_kl = float(np.mean(kls)) if kls else 0.0
    worst = int(np.argmax(diffs)) if diffs and max(diffs) > prob_tolerance else next(
        (i for i, same in enumerate(agree) if not same), None)
    return VerifyReport(
        checked=len(names), top1_agreement=float(np.mean(agree)) if agree else 0.0,
        max_abs_prob_diff=max(diffs, default=0.0), worst_pair=None if worst is None else names[worst],
        mean_kl=mean_kl if math.isfinite(mean_kl) else float("inf"),
        min_agreement=min_agreement, prob_tolerance=prob_tolerance,
        version_changes=_version_changes(config.versions), source_changes=source_changes(config, keys),
        teacher_changes=_teacher_changes(config, teacher),
    )


def _version_changes(recorded: dict[str, str]) -> list[str]:
    current = library_versions()
    return [f"{name}: {old} -> {current.get(name)}" for name, old in recorded.items() if current.get(name) != old]


def source_changes(config: ReinforceConfig, keys: Sequence[str]) -> list[str]:
    """How the rows ``keys`` differ from those the run reinforced (its recorded row count and keys' SHA-256); empty
    when they are the same. A run over the first rows of a split (``--limit``) is compared with those rows, so the
    full split is no change.

    Example:
        >>> config = ReinforceConfig(policy={}, num_samples=1, topk=1, seed=0, shard_size=2, teacher=[],
        ...                          dataset={"num_rows": 2, "keys_sha256": keys_sha256(["a", "b"])})
        >>> source_changes(config, ["a", "b", "c"]), source_changes(config, ["b", "a"])[0][:30]
        ([], 'the keys or their row order di')
    """
    recorded = config.dataset.get("num_rows")
    if recorded is not None and len(keys) > recorded and config.dataset.get("keys_sha256") == keys_sha256(
            keys[:recorded]):
        return []  # the run covered the first rows (--limit): they are unchanged
    changes = []
    if recorded not in (None, len(keys)):
        changes.append(f"{recorded} rows reinforced, {len(keys)} now")
    if config.dataset.get("keys_sha256") not in (None, keys_sha256(keys)):
        changes.append("the keys or their row order differ from the reinforced source (samples are matched by key; "
                       "check that images still match their keys)")
    return changes


def _teacher_changes(config: ReinforceConfig, teacher: Teacher) -> list[str]:
    recorded = [m.get("sha256") for m in config.teacher]
    current = [m.sha256 for m in teacher.members]
    if None in recorded or recorded == current:
        return []
    return [f"member weight hashes {[h[:12] for h in recorded]} -> {[h[:12] for h in current]}"]
