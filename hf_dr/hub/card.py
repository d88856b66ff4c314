"""Dataset cards of pushed reinforcement runs: statistics, figures and the card rendered from ``cards/``.

The card is a :class:`huggingface_hub.DatasetCard` rendered with :meth:`~huggingface_hub.DatasetCard.from_template`
from ``cards/reinforced_dataset.md``: package data of the top-level ``cards`` package, read with
:mod:`importlib.resources`, so a wheel renders it as the source tree does. Its YAML carries the license, annotation
creators, task category and id, tags, the source (a Hub id only), ``configs`` (so ``datasets.load_dataset(repo_id)``
finds the splits: a push keeps the other splits' ``data_files`` and ``dataset_info`` entries of the repo's card and
adds or replaces its own) and ``dataset_info`` without features (the data files carry them, with the run's
description; see :func:`card_data`). Its prose (of the split pushed last, beside a table of every split) says what
the dataset is, how to load and train on it (a loop, timm, the Trainer: code that runs as written for the
dataset's channels and classes), its Data Fields, the teacher members with their hashes, Hub links and the metrics
fine-tuning recorded, the policy and its parameters, N, k, bytes per reinforcement, the generation cost, figures, the
run's config (collapsed), its limitations, the license and the paper's citation. The sections' text is made in
:mod:`hf_dr.hub.card_sections`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData, HfApi, hf_hub_url
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec
from hf_dr.data.schema import REINFORCEMENTS_COLUMN
from hf_dr.errors import DataMismatchError
from hf_dr.files import write_atomic
from hf_dr.generate.builder import SELF_CONTAINED
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.hub.card_sections import (
    codec_text,
    compact_json,
    data_fields,
    default_name,
    images_text,
    member_rows,
    metrics_text,
    policy_rows,
    snippet_values,
    source_text,
    stats_text,
)
from hf_dr.hub.packing import DATA_DIR
from hf_dr.hub.upload import Target, hub_call

TEMPLATE_PACKAGE, TEMPLATE_NAME = "hf_dr.cards", "reinforced_dataset.md"  # cards/reinforced_dataset.md, package data
CONFIDENCE_FIGURE = "assets/teacher_confidence.png"
SAMPLES_FIGURE = "assets/replayed_samples.png"
HISTOGRAM_BINS = 20
GRID_PANELS = 7
FOOTER_BYTES = 1 << 18  # the end of a data file read for its footer (its run description included)
TAGS = ["dataset-reinforcement", "knowledge-distillation", "soft-labels", "data-augmentation", "hf-dr"]
PAPER_URL = "https://arxiv.org/abs/2303.08983"
CITATION = """@InProceedings{Faghri_2023_ICCV,
    author    = {Faghri, Fartash and Pouransari, Hadi and Mehta, Sachin and Farajtabar, Mehrdad and Farhadi, Ali and
                 Rastegari, Mohammad and Tuzel, Oncel},
    title     = {Reinforce Data, Multiply Impact: Improved Model Accuracy and Robustness with Dataset Reinforcement},
    booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
    month     = {October},
    year      = {2023}
}"""


# -- statistics -----------------------------------------------------------------------------------------------------
def reinforcement_stats(shard_paths: Sequence[str], manifest: dict[str, Any], config: ReinforceConfig
                        ) -> dict[str, Any]:
    """Sizes and teacher-confidence statistics of a run, read shard by shard.

    Returns a dict with ``num_rows``, ``num_reinforcements``, ``num_bytes``, ``bytes_per_reinforcement``,
    ``forward_passes`` (views x teacher members), ``histogram`` (counts of the stored top-1 probabilities in
    ``HISTOGRAM_BINS`` bins over [0, 1]), ``mean_top1`` and ``label_agreement`` (share of stored views whose teacher
    top-1 is the label; None without labels) and ``num_skipped`` (rows whose image could not be decoded: no records).

    Example:
        >>> stats = reinforcement_stats(paths, verify_run("run/"), ReinforceConfig.load("run/"))  # doctest: +SKIP
        >>> round(stats["bytes_per_reinforcement"], 1)  # doctest: +SKIP
        39.4
    """
    counts = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    top1_sum, agree, total = 0.0, 0, 0
    label_column = config.columns.label
    codec = RecordCodec.from_config(config.codec)
    columns = [REINFORCEMENTS_COLUMN, *([CLASSES_COLUMN] if codec.class_set else []),
               *([label_column] if label_column else [])]
    for path in shard_paths:
        table = pq.read_table(path, columns=columns)
        top1_ids, top1 = codec.first_labels(table, REINFORCEMENTS_COLUMN)
        counts += np.histogram(top1, bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0]
        top1_sum, total = top1_sum + float(top1.sum()), total + len(top1)
        if label_column is not None:
            lengths = pc.list_value_length(table.column(REINFORCEMENTS_COLUMN)).to_numpy()
            labels = np.repeat(table.column(label_column).to_numpy(), lengths)
            agree += int((top1_ids == labels).sum())
    num_bytes = sum(record["num_bytes"] for record in manifest["shards"])
    return {
        "num_rows": manifest["num_rows"], "num_reinforcements": total, "num_bytes": num_bytes,
        "bytes_per_reinforcement": num_bytes / max(total, 1), "forward_passes": total * len(config.teacher),
        "histogram": counts.tolist(), "mean_top1": top1_sum / max(total, 1),
        "label_agreement": agree / max(total, 1) if label_column is not None else None,
        "num_skipped": len(manifest.get("skipped", [])),
    }


# -- figures --------------------------------------------------------------------------------------------------------
def save_figures(staging: str, data_files: Sequence[str], stats: dict[str, Any], config: ReinforceConfig,
                 layout: str) -> list[dict[str, str]]:
    """Writes the card's figures under ``staging/assets``; returns ``{"path", "caption"}`` per figure.

    The replayed-samples grid is made for the self-contained layout only: the metadata-only layout exists because
    the images may not be redistributed, and a grid would publish some.
    """
    os.makedirs(os.path.join(staging, "assets"), exist_ok=True)
    figures = [{"path": CONFIDENCE_FIGURE, "caption": "Teacher confidence: the stored top-1 probability of every "
                "reinforcement."}]
    save_confidence_histogram(stats["histogram"], os.path.join(staging, CONFIDENCE_FIGURE))
    if layout == SELF_CONTAINED:
        save_samples_grid(os.path.join(staging, data_files[0]), config, os.path.join(staging, SAMPLES_FIGURE))
        figures.append({"path": SAMPLES_FIGURE, "caption": "One image and some of its stored reinforcements, "
                        "replayed, with the teacher's top-3 classes."})
    return figures


def save_confidence_histogram(counts: Sequence[int], path: str) -> str:
    """A bar chart of stored top-1 probabilities (PNG, same bytes for the same counts)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    edges = np.linspace(0.0, 1.0, len(counts) + 1)
    total = max(int(np.sum(counts)), 1)
    axes.bar(edges[:-1], np.asarray(counts) / total, width=np.diff(edges), align="edge", color="#3b75af",
             edgecolor="white")
    axes.set_xlabel("teacher top-1 probability of a stored augmentation")
    axes.set_ylabel("share of reinforcements")
    axes.set_xlim(0.0, 1.0)
    figure.tight_layout()
    return write_atomic(path, lambda temporary: figure.savefig(temporary, format="png", metadata={"Software": None}))


def save_samples_grid(data_file: str, config: ReinforceConfig, path: str) -> str:
    """The first row of a self-contained data file and up to ``GRID_PANELS`` of its replayed reinforcements (mixing
    partners from the file's first row group, all that is read of a file of a few hundred MB)."""
    from hf_dr.data.replay import ReinforcedTransform
    from hf_dr.data.view_grid import render_grid, save_grid

    columns = config.columns
    with pq.ParquetFile(data_file) as parquet:
        table = datasets.Dataset(datasets.table.InMemoryTable(parquet.read_row_group(0)))
    transform = ReinforcedTransform(
        table, **config.replay_options(table), size=_grid_size(config), images=table,
        image_column=columns.image, key_column=columns.key_name, label_column=columns.label,
    )
    row = table[0]
    key = row[transform.key_column]
    image = row[transform.image_column]
    indices = [i for i in range(config.num_samples) if _replayable(transform, image, key, i)][:GRID_PANELS]
    label = table.features.get(columns.label)
    names = label.names if isinstance(label, datasets.ClassLabel) else None
    grid = render_grid(transform, image, key, indices, names)
    return write_atomic(path, lambda temporary: save_grid(grid, temporary))


def _replayable(transform: Any, image: Any, key: str, index: int) -> bool:
    try:
        transform.view(image, key, index)
    except DataMismatchError:  # a mixing partner outside this file
        return False
    return True


def _grid_size(config: ReinforceConfig) -> int:
    side = _teacher_size(config)
    return int(min(max(side, 96), 224))


def _teacher_size(config: ReinforceConfig | dict[str, Any]) -> int:
    teacher = config["teacher"] if isinstance(config, dict) else config.teacher
    data_config = teacher[0].get("data_config") or {}
    size = data_config.get("input_size") or teacher[0]["spec"].get("input_size") or (3, 224, 224)
    return int(size[-1])


# -- the card -------------------------------------------------------------------------------------------------------
def card_data(meta: dict[str, Any], info: datasets.DatasetInfo, license: str, pretty_name: str,
              previous: DatasetCardData | None = None, other_download_bytes: int = 0) -> DatasetCardData:
    """The card's YAML: license, task category and id, annotation creators, tags, size category, source (a Hub id
    only), ``configs`` and ``dataset_info``.

    ``dataset_info`` lists the splits and their sizes, not the features: the run's description rides in the feature
    ``id`` of the records (:mod:`hf_dr.data.description`, the whole run as JSON, class names included), and the data
    files carry the features in full, which ``datasets.load_dataset`` reads when the card has none (a card's
    features would replace them). ``previous`` is the YAML of the card the repo has: its other splits'
    ``data_files`` and ``dataset_info`` entries are kept (their files take ``other_download_bytes``), this split's
    replaced."""
    source = source_text(meta["source"])
    data = DatasetCardData(
        license=license, annotations_creators=["machine-generated"], task_categories=["image-classification"],
        task_ids=["multi-class-image-classification"], tags=list(TAGS), pretty_name=pretty_name,
        size_categories=[size_category(meta["num_rows"] or 0)],
        source_datasets=[f"extended|{source['hub_id']}"] if source["hub_id"] else None,
    )
    split = meta["split"]
    data_files, splits = [{"split": split, "path": f"data/{split}-*"}], [*(info.splits or {}).values()]
    if previous is not None:  # the repo's other splits are kept, as Dataset.push_to_hub keeps them
        kept_files, kept_splits, _ = other_splits(previous, split)
        data_files, splits = [*kept_files, *data_files], [*kept_splits, *splits]
    MetadataConfigs({"default": {"data_files": data_files}}).to_dataset_card_data(data)
    merged = datasets.SplitDict()
    for split_info in sorted(splits, key=lambda split_info: split_info.name):
        merged.add(split_info)
    info = datasets.DatasetInfo(splits=merged, download_size=(info.download_size or 0) + other_download_bytes,
                                dataset_size=sum(split_info.num_bytes or 0 for split_info in splits))
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    return data


def refuse_other_features(target: Target, split: str, features: datasets.Features, repo_id: str,
                          api: HfApi | None = None) -> None:
    """Refuses a split whose columns differ from those of the repo's other splits (``target``: what the push found
    in the repo; another layout, or another run's columns): ``datasets.load_dataset`` could not load the splits
    together. The other splits' features are read from the card (cards written before it stopped listing them) or
    from the footer of one of their data files (``api`` reads it, at the head the push read)."""
    previous = target.card
    if previous is None:
        return
    kept, _, theirs = other_splits(previous, split)
    if kept and theirs is None and api is not None:
        theirs = _file_features(api, repo_id, target, [entry["split"] for entry in kept])
    if kept and theirs is not None and theirs != features:
        raise DataMismatchError(
            f"{repo_id!r} holds the splits {[entry['split'] for entry in kept]} with the columns {list(theirs)}, but "
            f"this {split!r} split has {list(features)} (another layout or other run columns): push it to another "
            "repo, or push every split with the same layout."
        )


def _file_features(api: HfApi, repo_id: str, target: Target, names: Sequence[str]) -> datasets.Features | None:
    """The features in the Parquet footer of the first data file of the splits ``names``, read with byte ranges of
    its end (one request, two for a footer over ``FOOTER_BYTES``)."""
    path = next((path for path in sorted(target.files) for name in names
                 if path.startswith(f"{DATA_DIR}/{name}-") and path.endswith(".parquet")), None)
    if path is None:
        return None
    url = hf_hub_url(repo_id, path, repo_type="dataset", revision=target.head, endpoint=api.endpoint)
    size = target.files[path]

    def tail(count: int) -> bytes:
        response = get_session().get(url, headers={**build_hf_headers(token=api.token),
                                                   "Range": f"bytes={max(size - count, 0)}-"}, follow_redirects=True)
        hf_raise_for_status(response)
        return response.content[-count:]

    def footer() -> bytes:
        end = tail(min(size, FOOTER_BYTES))
        length = int.from_bytes(end[-8:-4], "little") + 8
        return end[-length:] if length <= len(end) else tail(length)

    metadata = pq.read_metadata(pa.BufferReader(b"PAR1" + hub_call(f"read the columns of {path}", footer)))
    return datasets.Features.from_arrow_schema(metadata.schema.to_arrow_schema())


def other_splits(previous: DatasetCardData, split: str
                 ) -> tuple[list[dict[str, Any]], list[datasets.SplitInfo], datasets.Features | None]:
    """The ``data_files`` entries and ``dataset_info`` splits of the splits other than ``split`` in a repo's card
    (``previous``, its YAML), and that card's features."""
    configs = MetadataConfigs.from_dataset_card_data(previous).get("default", {})
    files = configs.get("data_files") or []
    if not (isinstance(files, list) and all(isinstance(entry, dict) for entry in files)):
        files = [{"split": "train", "path": files}]  # a bare pattern or list of them is the train split
    infos = DatasetInfosDict.from_dataset_card_data(previous).get("default")
    kept = [dict(entry) for entry in files if entry.get("split") != split]
    names = {entry["split"] for entry in kept}
    splits = [info for name, info in (infos.splits or {}).items() if name in names] if infos is not None else []
    return kept, splits, infos.features if infos is not None else None


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` value for a row count.

    Example:
        >>> size_category(50_000)
        '10K<n<100K'
    """
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    return next((name for bound, name in bounds if num_rows < bound), "n>1T")


def build_card(repo_id: str, meta: dict[str, Any], config: dict[str, Any], stats: dict[str, Any],
               figures: Sequence[dict[str, str]], info: datasets.DatasetInfo, *, license: str = "unknown",
               license_given: bool = False, pretty_name: str | None = None, generation_cost: str | None = None,
               template_path: str | os.PathLike | None = None, previous: DatasetCardData | None = None,
               other_download_bytes: int = 0, teacher_metrics: dict[str, Any] | None = None) -> DatasetCard:
    """Renders the dataset card of a pushed run from the Jinja template in ``cards/``.

    Args:
        repo_id (`str`): the dataset repo, used in the loading code.
        meta (`dict`): the content of ``hf_dr.json`` (see :func:`hf_dr.hub.push.hub_metadata`).
        config (`dict`): the published run config (see :func:`hf_dr.hub.push.public_config`).
        stats (`dict`): from :func:`reinforcement_stats`.
        figures (`Sequence[dict]`): ``{"path", "caption"}`` of each figure uploaded beside the card.
        info (`datasets.DatasetInfo`): features and sizes of the data files, for ``dataset_info`` and Data Fields.
        license (`str`, *optional*, defaults to ``"unknown"``): a Hub license id.
        license_given (`bool`, *optional*, defaults to `False`): whether the publisher chose ``license``
            (``--license``) rather than it being read from the source.
        pretty_name (`str`, *optional*): the title; defaults to the source's name with a ``+``.
        generation_cost (`str`, *optional*): the run's cost in words (hardware, hours).
        template_path (`str`, *optional*): another Jinja template.
        previous (`DatasetCardData`, *optional*): the YAML of the repo's card; its other splits are kept.
        other_download_bytes (`int`, *optional*, defaults to 0): the bytes of the other splits' data files.
        teacher_metrics (`dict`, *optional*): what fine-tuning measured of the members
            (:func:`hf_dr.hub.card_sections.teacher_metrics`).

    Example:
        >>> card = build_card("me/digits-plus", meta, config, stats, figures, info)  # doctest: +SKIP
        >>> card.data.tags[0]  # doctest: +SKIP
        'dataset-reinforcement'
    """
    pretty_name = pretty_name or default_name(repo_id, meta)
    data = card_data(meta, info, license, pretty_name, previous, other_download_bytes)
    template = Path(template_path).read_text(encoding="utf-8") if template_path else default_template()
    codec = RecordCodec.from_config(config.get("codec"))
    teacher_metrics = teacher_metrics or {}
    label = info.features.get(meta["columns"].get("label") or "") if info.features else None
    num_rows = (meta["num_rows"] or 0) - stats.get("num_skipped", 0) or None
    return DatasetCard.from_template(
        data, template_str=template, repo_id=repo_id, meta=meta, source=meta["source"], layout=meta["layout"],
        split=meta["split"], columns=meta["columns"], source_link=source_text(meta["source"]),
        num_rows=images_text(meta["num_rows"], stats.get("num_skipped", 0)), num_samples=config["num_samples"],
        topk=config["topk"], seed=config["seed"], num_classes=config["num_classes"],
        policy_name=config["policy"]["name"], policy_ops=policy_rows(config["policy"], config.get("image_mode")),
        image_mode=config.get("image_mode"), num_skipped=stats.get("num_skipped", 0),
        members=member_rows(config["teacher"], teacher_metrics.get("members")), size=_teacher_size(config),
        ensemble=metrics_text(teacher_metrics.get("ensemble")), calibration=teacher_metrics.get("calibration"),
        stats=stats, stats_text=stats_text(stats), generation_cost=generation_cost, figures=list(figures),
        versions=config.get("versions", {}), citation=CITATION, paper_url=PAPER_URL, pretty_name=pretty_name,
        num_files=len(meta["data_files"]), **codec_text(codec, config["topk"]), selection=config.get("selection"),
        license_given=license_given, splits=data.dataset_info.get("splits") or [],
        fields=data_fields(info.features, meta["columns"], codec, config["num_classes"], config["topk"],
                           config["num_samples"]) if info.features else [],
        class_names=list(label.names) if isinstance(label, datasets.ClassLabel) else None,
        run_config=compact_json(config), **snippet_values(config, num_rows),
    )


def default_template() -> str:
    """The text of the card template, ``cards/reinforced_dataset.md``, found as package data of ``cards``."""
    return resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_NAME).read_text(encoding="utf-8")
