"""``reinforce``: run a teacher once over N stored augmentations of every image and write the records as shards.

The run is planned by sample range, never by process: shard ``i`` holds rows ``[i * shard_size, (i + 1) *
shard_size)`` and process ``r`` of ``W`` takes shards ``r, r + W, ...``. Every view's params come from
``generator_for(seed, key, index)`` and the teacher always runs on padded batches of ``batch_size`` views of one
shard, so the bytes written do not depend on the number of processes or DataLoader workers. Rerunning the same
call resumes: finished shards (checked by checksum) are skipped before the teacher is loaded; a folder made with
another configuration or from another source (:mod:`hf_dr.generate.resume`), or held by another run
(:mod:`hf_dr.generate.lock`), is refused. Every argument is checked before the folder is touched.

Every image is converted to one image mode, decided once per run and recorded (``image_mode`` in the config and the
data's description), so the replay converts it the same way. An image that cannot be decoded stops the run naming
its row, key and file, or with ``on_bad_image="skip"`` its row gets no records and is listed in the manifest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import datasets
import torch
from tqdm.auto import tqdm

from hf_dr.augment.functional import check_image_mode
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.augment.registry import as_policy
from hf_dr.data.codec import RecordCodec
from hf_dr.data.columns import check_columns, class_count, column_values, encoded_images, image_feature
from hf_dr.data.description import RunDescription
from hf_dr.data.keys import KeyList
from hf_dr.data.run_columns import RunColumns
from hf_dr.data.source_keys import keys_sha256, scan_digests, scan_keys
from hf_dr.data.sources import source_info
from hf_dr.errors import InvalidConfigError
from hf_dr.generate.lock import RunLock
from hf_dr.generate.plan import ChunkPlan, Shard, plan_shards
from hf_dr.generate.render import (
    ViewRenderer,
    check_bad_image_choice,
    describe_source,
    partner_sizes,
    resolve_image_mode,
    without_records,
)
from hf_dr.generate.resume import refuse_other_source, refuse_other_weights
from hf_dr.generate.run_config import ReinforceConfig, library_versions
from hf_dr.generate.settings import ReinforceSettings
from hf_dr.generate.shard_table import ShardTable, output_features
from hf_dr.generate.source_labels import check_label_range, check_label_type
from hf_dr.generate.storage import ShardWriter, clear_run, remove_temporaries, shard_record, write_manifest
from hf_dr.models.teacher import MemberSpec, Teacher, create_teacher
from hf_dr.models.weights import changed_weights

logger = logging.getLogger(__name__)
TeacherLike = Teacher | str | MemberSpec | dict[str, Any] | Sequence[str | MemberSpec | dict[str, Any]]


@dataclass
class _Plan:
    """What a process knows before any teacher work: the config, the shards, and which of its own are left."""

    config: ReinforceConfig
    existing: ReinforceConfig | None
    shards: list[Shard]
    todo: list[Shard]
    keys: KeyList


def reinforce(
    dataset: datasets.Dataset,
    teacher: TeacherLike,
    policy: str | dict[str, Any] | AugmentationPolicy | None = None,
    num_samples: int | None = None,
    topk: int | None = None,
    seed: int | None = None,
    output_dir: str | None = None,
    *,
    config: ReinforceSettings | None = None,
    accelerator: Any = None,
    **settings: Any,
) -> str:
    """Reinforces ``dataset``: stores N augmentation params and the teacher's top-k per image, as Parquet shards.

    The settings are one :class:`~hf_dr.generate.settings.ReinforceSettings` (``config=``, as ``hf-dr reinforce``
    builds it) or its fields as arguments, which replace those of ``config``; left out, each takes its default there.

    Args:
        dataset (`datasets.Dataset`): the source rows, with an ``Image`` column.
        teacher (`Teacher`, or member specs): a loaded :class:`Teacher` or what :func:`create_teacher` takes; specs
            are loaded only if this process has shards left to do.
        policy (`str`, `dict` or `AugmentationPolicy`, *optional*, defaults to ``"rrc+ra_re"``): a policy name,
            config or object.
        num_samples (`int`, *optional*, defaults to 10): N, augmentations stored per image.
        topk (`int`, *optional*, defaults to 10): k, teacher probabilities stored per augmentation.
        seed (`int`, *optional*, defaults to 0): seed of every draw, with the sample key and the augmentation index.
        output_dir (`str`): where the shards, ``manifest.json`` and ``reinforce_config.json`` go (required).
        config (`ReinforceSettings`, *optional*): all settings as one object.
        image_column, label_column, key_column (`str`, *optional*): column names; ``label_column=None`` for unlabelled
            data; without ``key_column`` the key is a hash of the image bytes (or see ``key_from``).
        key_from (`str`, *optional*): ``"path"`` keys every row by the file name of its image cell's stored path
            (:func:`hf_dr.data.keys.path_key`; e.g. ``n01440764_10026.JPEG`` on the Hub's ImageNet, whose split holds
            byte-identical files that content keys refuse); ``"content"`` (the default without ``key_column``) by a
            hash of the image bytes. Recorded as ``columns["key_source"]``; runs not keyed by content also store an
            8-byte digest of every image, so a changed image under the same key is refused where it is joined.
        image_mode (`str`, *optional*): ``"RGB"`` or ``"L"``, the mode every image is converted to for the teacher and
            for the replay (:func:`hf_dr.augment.functional.convert_mode`: 16-bit images rescaled, transparency
            dropped, CMYK and palettes to RGB); by default ``"L"`` for a teacher whose members all read one channel,
            else ``"RGB"``. Recorded in the config and the data's description.
        on_bad_image (`str`, *optional*, defaults to ``"raise"``): what an image that cannot be decoded (truncated,
            damaged, empty) does: ``"raise"`` stops the run with :class:`hf_dr.errors.CorruptImageError` naming its
            row, key and file; ``"skip"`` gives its row no records and lists it (key and error) under ``"skipped"``
            in ``manifest.json``; :func:`hf_dr.load_run_records` then leaves such rows out, with a warning. A run
            stopped by a bad image resumes with ``"skip"``: its finished shards are kept.
        codec (`RecordCodec` or `dict`, *optional*): how records store params (``"stored"`` or ``"seeded"``) and labels
            (``"fp16-topk"``, ``"q8-topk"``, ``"q8-topk-set"``, ``"sampled"``): see :mod:`hf_dr.data.codec`. Stored
            params and fp16 top-k by default. Recorded in the config and the data's description.
        shard_size (`int`, *optional*, defaults to 1000): rows per shard (the unit of resume).
        batch_size (`int`, *optional*, defaults to 128): views per teacher forward.
        num_workers (`int`, *optional*): DataLoader workers decoding and augmenting; by default 0 on CPU (the
            teacher's threads need the cores more: augmenting costs ~2 ms per view, a CPU forward tens) and half the
            CPU cores (at most 8) on GPU.
        precision (`str`, *optional*, defaults to ``"fp32"``): ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast (a
            loaded :class:`Teacher` keeps its own).
        channels_last (`bool`, *optional*, defaults to False): channels-last teacher (a loaded one keeps its own).
        overwrite (`bool`, *optional*, defaults to False): delete a previous run's files in ``output_dir`` (config,
            manifest, shards; nothing else) and start over.
        source (`dict`, *optional*): provenance of ``dataset`` (``id``, ``split``, ``revision``) for the config.
        progress (`bool`, *optional*, defaults to True): progress bar on the main process.
        accelerator (`accelerate.Accelerator`, *optional*): defaults to a new one (CPU when no GPU).

    Returns:
        `str`: ``output_dir``, holding a complete run (load it with :func:`hf_dr.load_run_records`).

    Example (the whole flow on 8 tiny images: a teacher saved to a file, reinforcement, replay):
        >>> import os, tempfile, numpy as np
        >>> from hf_dr import ReinforcedTransform, create_model, load_run_records
        >>> from hf_dr.models.checkpoints import save_checkpoint
        >>> folder = tempfile.mkdtemp()
        >>> pixels = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
        >>> ds = datasets.Dataset.from_dict(
        ...     {"image": list(pixels), "label": [i % 10 for i in range(8)], "id": [f"img{i}" for i in range(8)]},
        ...     features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10),
        ...                                 "id": datasets.Value("string")}))
        >>> teacher = create_model("hf_dr_cnn_tiny", num_classes=10)
        >>> weights = save_checkpoint(teacher, os.path.join(folder, "teacher.safetensors"))
        >>> out = reinforce(ds, [f"hf_dr_cnn_tiny={weights}"], "rrc", num_samples=4, topk=3, seed=0,
        ...                 output_dir=os.path.join(folder, "run"), key_column="id", progress=False)
        >>> reinforcements = load_run_records(out)
        >>> len(reinforcements), len(reinforcements[0]["reinforcements"])
        (8, 4)
        >>> transform = ReinforcedTransform(reinforcements, size=24).attach(ds)  # the run's policy, classes, columns
        >>> ds[0]["pixel_values"].shape, ds[0]["labels"].shape
        (torch.Size([1, 24, 24]), torch.Size([10]))
    """
    given = {"policy": policy, "num_samples": num_samples, "topk": topk, "seed": seed, "output_dir": output_dir}
    settings = ReinforceSettings.of(config, **{k: v for k, v in given.items() if v is not None}, **settings)
    accelerator = accelerator or default_accelerator()
    if settings.num_workers is None:
        settings = replace(settings, num_workers=default_num_workers(accelerator.device))
    settings.check()
    _check_choices(dataset, settings)
    codec = settings.codec if isinstance(settings.codec, RecordCodec) else RecordCodec.from_config(settings.codec)
    settings = replace(settings, policy=as_policy(settings.policy), codec=codec.resolved(settings.topk))
    if isinstance(teacher, Teacher):
        settings = replace(settings, precision=teacher.precision, channels_last=teacher.channels_last)
    output_dir = settings.output_dir
    with RunLock(output_dir, owner=accelerator.is_main_process) as lock:  # one run at a time owns the folder
        accelerator.wait_for_everyone()  # no process reads the folder before its main process owns it
        teacher, image_mode = resolve_image_mode(teacher, settings.image_mode,
                                                 None if settings.overwrite else output_dir,
                                                 lambda: _load_teacher(teacher, dataset, settings))
        settings = replace(settings, image_mode=image_mode)
        plan = _plan(dataset, teacher, settings, accelerator)
        lock.record(plan.config.fingerprint())
        check_label_type(dataset, settings.label_column)
        loaded = None
        if plan.todo or (accelerator.is_main_process and _teacher_needed(teacher, plan)):
            loaded = _load_teacher(teacher, dataset, settings)
            check_label_range(dataset, settings.label_column, loaded.num_classes)
            _record_teacher(plan, loaded, output_dir)
        elif plan.existing is not None:
            plan.config.teacher, plan.config.num_classes = plan.existing.teacher, plan.existing.num_classes
        if accelerator.is_main_process:
            _prepare_folder(output_dir, plan.config, settings.overwrite)
        accelerator.wait_for_everyone()
        if plan.todo:
            _generate(dataset, loaded.to(accelerator.device), settings, plan,
                      settings.progress and accelerator.is_main_process)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_manifest(output_dir, plan.shards, plan.config.fingerprint(), settings.num_samples)
        accelerator.wait_for_everyone()
    return output_dir


def default_accelerator() -> Any:
    """An ``Accelerator`` on the GPU when there is one, else on CPU processes (gloo), with a long barrier timeout."""
    from accelerate import Accelerator, InitProcessGroupKwargs

    timeout = InitProcessGroupKwargs(timeout=timedelta(hours=6))
    return Accelerator(cpu=not torch.cuda.is_available(), kwargs_handlers=[timeout])


def default_num_workers(device: torch.device | str) -> int:
    """0 on CPU (decode and augment between forwards), else half the CPU cores, at most 8."""
    return 0 if torch.device(device).type == "cpu" else min(8, (os.cpu_count() or 1) // 2)


def _check_choices(dataset: datasets.Dataset, settings: ReinforceSettings) -> None:
    """The choices and the source's columns, checked (with :meth:`ReinforceSettings.check`) before the folder is
    touched."""
    check_image_mode(settings.image_mode)
    check_bad_image_choice(settings.on_bad_image)
    _check_dataset(dataset, settings.columns)


def _check_dataset(dataset: datasets.Dataset, columns: RunColumns) -> None:
    """The source's columns, its image feature and its rows, checked before the folder is touched."""
    check_columns(dataset, image_column=columns.image, label_column=columns.label, key_column=columns.key)
    image_feature(dataset, columns.image)
    if len(dataset) == 0:
        raise InvalidConfigError("the dataset has no rows; nothing to reinforce. Check the split (--split) and "
                                 "--limit, or the filter that made it.")


def _member_specs(teacher: TeacherLike) -> list[MemberSpec]:
    if isinstance(teacher, Teacher):
        return [m.spec for m in teacher.members]
    specs = [teacher] if isinstance(teacher, (str, MemberSpec, dict)) else list(teacher)
    return [MemberSpec.parse(s) for s in specs]


def _plan(dataset: datasets.Dataset, teacher: TeacherLike, settings: ReinforceSettings, accelerator: Any) -> _Plan:
    """The run's config and shards (``settings`` resolved: a policy object, a resolved codec, the image mode)."""
    columns, output_dir, overwrite = settings.columns, settings.output_dir, settings.overwrite
    _check_dataset(dataset, columns)
    keys = KeyList(scan_keys(dataset, columns.image, columns.key, columns.key_source))  # workers unpickle 2 buffers
    info = {**source_info(dataset), **(settings.source or {}), "num_rows": len(keys), "keys_sha256": keys_sha256(keys)}
    config = ReinforceConfig(
        policy=settings.policy.config(), num_samples=settings.num_samples, topk=settings.topk, seed=settings.seed,
        shard_size=settings.shard_size, teacher=[{"spec": s.to_dict()} for s in _member_specs(teacher)],
        precision=settings.precision, columns=columns, image_mode=settings.image_mode, dataset=info,
        versions=library_versions(), codec=None if settings.codec.is_default else settings.codec.config(),
    )
    existing = None if overwrite else ReinforceConfig.load(output_dir)
    if existing is not None:
        config.check_compatible(existing, output_dir)
    shards = plan_shards(len(keys), settings.shard_size)
    if existing is not None:
        refuse_other_source(dataset, keys, config, existing, shards, output_dir)
    mine = shards[accelerator.process_index :: accelerator.num_processes]
    fingerprint = config.fingerprint()
    todo = mine if overwrite else [s for s in mine if shard_record(output_dir, s, fingerprint) is None]
    logger.info("process %d of %d: %d of its %d shards to do (%d shards in all)", accelerator.process_index,
                accelerator.num_processes, len(todo), len(mine), len(shards))
    return _Plan(config, existing, shards, todo, keys)


def _load_teacher(teacher: TeacherLike, dataset: datasets.Dataset, settings: ReinforceSettings) -> Teacher:
    if not isinstance(teacher, Teacher):
        teacher = create_teacher(_member_specs(teacher), precision=settings.precision,
                                 channels_last=settings.channels_last)
    teacher.check_num_classes(class_count(dataset, settings.label_column))
    topk = settings.topk
    if topk > teacher.num_classes:
        raise InvalidConfigError(f"topk should be at most the class count {teacher.num_classes}, but got {topk}; pass "
                                 f"topk <= {teacher.num_classes} (--topk).")
    return teacher


def _teacher_needed(teacher: TeacherLike, plan: _Plan) -> bool:
    """Whether the main process loads the teacher although its shards are done: a new run records it, a finished
    one checks a given :class:`Teacher` and member weight files that changed since the run (weights.py)."""
    if plan.existing is None or isinstance(teacher, Teacher):
        return True
    return bool(changed_weights(plan.config.teacher, plan.existing.teacher))


def _record_teacher(plan: _Plan, teacher: Teacher, output_dir: str) -> None:
    plan.config.teacher, plan.config.num_classes = teacher.describe(), teacher.num_classes
    if plan.existing is not None:
        refuse_other_weights(plan.config.teacher, plan.existing.teacher, output_dir)
        plan.config.check_compatible(plan.existing, output_dir)


def _prepare_folder(output_dir: str, config: ReinforceConfig, overwrite: bool) -> None:
    """Clears (``overwrite``) and tidies the folder, and writes the config unless it holds this run's already: the
    main process calls it holding the folder's lock, and never replaces another run's config."""
    os.makedirs(output_dir, exist_ok=True)
    if overwrite:
        clear_run(output_dir)
    remove_temporaries(output_dir)
    existing = ReinforceConfig.load(output_dir)
    if existing is None:
        config.save(output_dir)
    else:
        config.check_compatible(existing, output_dir)


def _generate(dataset: datasets.Dataset, teacher: Teacher, settings: ReinforceSettings, plan: _Plan,
              progress: bool) -> None:
    config, device, policy = plan.config, next(teacher.parameters()).device, settings.policy
    columns, output_dir, on_bad_image, batch_size = (config.columns, settings.output_dir, settings.on_bad_image,
                                                     settings.batch_size)
    images, where = encoded_images(dataset, columns.image), describe_source(config.dataset)
    sizes = partner_sizes(images, plan.keys, on_bad_image, where) if policy.needs_partner else None
    partners = PartnerPool(plan.keys, sizes) if sizes is not None else None
    chunks = ChunkPlan(plan.todo, config.num_samples, batch_size)
    codec = RecordCodec.from_config(config.codec)
    renderer = ViewRenderer(images, image_feature(dataset, columns.image), plan.keys, chunks, policy, teacher.views,
                            config.seed, batch_size, partners, config.image_mode, on_bad_image, where, codec.params)
    loader = torch.utils.data.DataLoader(renderer, batch_size=None, num_workers=settings.num_workers,
                                         pin_memory=device.type == "cuda")
    labels = column_values(dataset, columns.label) if columns.label else None
    label_feature = dataset.features.get(columns.label)
    digests = None if columns.by_content else _digests(dataset, columns.image)
    recorded = RunDescription.from_run((plan.existing or config).to_dict(), label_feature)  # a resume: as recorded
    features = output_features(policy, config.topk, teacher.num_classes, key_column=columns.key_name,
                               label_column=columns.label, label_feature=label_feature, description=recorded,
                               digest=digests is not None, codec=codec, num_samples=config.num_samples)
    tables: dict[int, ShardTable] = {}
    skipped: dict[int, dict[int, str]] = {}  # shard index -> {row: decode error}
    total = sum(s.num_rows for s in plan.todo) * config.num_samples
    with torch.inference_mode(), tqdm(total=total, unit="img", disable=not progress, desc="reinforce") as bar, \
            ShardWriter(output_dir, config.fingerprint()) as writer:
        for item in loader:
            chunk = chunks[item["chunk"]]
            skipped.setdefault(chunk.shard.index, {}).update(item["skipped"])
            probs = teacher([v.to(device, non_blocking=True) for v in item["views"]])[: len(chunk)]
            ids, values = codec.encode_labels(probs, config.topk, config.seed,
                                              lambda chunk=chunk: [(plan.keys[r], i) for r, i in chunk.views()])
            table = tables.setdefault(chunk.shard.index, ShardTable(chunk.shard, features, plan.keys, labels,
                                                                    config.num_samples, digests))
            table.add(chunk.start, chunk.stop, item["params"], ids, values)
            if chunk.last:
                bad = skipped.pop(chunk.shard.index)
                table = without_records(tables.pop(chunk.shard.index).build(), [r - chunk.shard.start for r in bad])
                writer.submit(chunk.shard, table,
                              [{"row": r, "key": plan.keys[r], "error": bad[r]} for r in sorted(bad)])
            bar.update(len(chunk))


def _digests(dataset: datasets.Dataset, image_column: str) -> Callable[[int, int], list[int]]:
    """The image digests of source rows ``[start, stop)``, for :class:`ShardTable` (read when a shard is built)."""
    return lambda start, stop: scan_digests(dataset, image_column, range(start, stop))
