"""The dataset card of a pushed run: it loads with ``DatasetCard.load``, its YAML validates on the server, it states
what the run was (teacher and hashes, policy, N, k, bytes, cost, source, citation), its code runs and its figures
are real PNGs."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch
from huggingface_hub import DatasetCard, HfApi, hf_hub_download
from PIL import Image

from hf_dr.generate.loading import load_reinforcements
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import verify_run
from hf_dr.hub.card import reinforcement_stats, size_category
from tests.utils_hub import (
    NUM_ROWS,
    NUM_SAMPLES,
    POLICY,
    SOURCE_LICENSE,
    TOPK,
    Published,
    published,
    server_stays_consistent,  # noqa: F401  (autouse fixture)
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Published:
    return published(tmp_path_factory)


@pytest.fixture(scope="module")
def card(state) -> DatasetCard:
    return DatasetCard.load(state.self_contained, repo_type="dataset")


def test_card_loads_and_its_yaml_validates(state, card):
    card.validate(repo_type="dataset")  # the server's /api/validate-yaml
    data = card.data.to_dict()
    assert data["license"] == SOURCE_LICENSE  # carried from the source repo
    assert data["task_categories"] == ["image-classification"] and "dataset-reinforcement" in data["tags"]
    assert data["source_datasets"] == [f"extended|{state.source_id}"] and data["size_categories"] == ["n<1K"]
    assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    info = data["dataset_info"]
    assert [f["name"] for f in info["features"]] == ["image", "key", "label", "image_digest", "reinforcements"]
    assert info["splits"][0]["name"] == "train" and info["splits"][0]["num_examples"] == NUM_ROWS
    assert HfApi().dataset_info(state.self_contained).card_data.license == SOURCE_LICENSE


def test_card_states_the_run(state, card):
    config = ReinforceConfig.load(state.run_dir)
    manifest = verify_run(state.run_dir)
    text = card.text
    for member in config.teacher:
        weights = os.path.basename(member["spec"]["weights"])
        assert f"`{weights}` | `{member['sha256']}` | 10 | 32x32 bilinear |" in text
    assert f"### Augmentation policy `{POLICY}`" in text
    assert "| `RandAugment` | fill=0, interpolation=nearest, magnitude=9," in text
    assert "| `RandomErasing` | prob=0.25," in text
    assert f"| augmentations per image (N) | {NUM_SAMPLES} |" in text
    assert f"| probabilities per augmentation (k) | {TOPK} |" in text
    per_record = sum(s["num_bytes"] for s in manifest["shards"]) / (NUM_ROWS * NUM_SAMPLES)
    assert f"| bytes per reinforcement | {per_record:.1f} B (zstd Parquet;" in text
    assert "| generation cost | 384 teacher forward passes (192 views x 2 members) |" in text
    assert "![Teacher confidence" in text and "(assets/teacher_confidence.png)" in text
    assert "(assets/replayed_samples.png)" in text
    assert "@InProceedings{Faghri_2023_ICCV" in text and "Reinforce Data, Multiply Impact" in text
    assert "**Layout: self-contained.**" in text and state.source_id in text


def test_metadata_only_card_records_the_source(state):
    card = DatasetCard.load(state.metadata_only, repo_type="dataset")
    card.validate(repo_type="dataset")
    link = f"[`{state.source_id}`](https://huggingface.co/datasets/{state.source_id})"
    source = f"| {link} | `{state.source_commit}` | `train` | column `key` | {NUM_ROWS} |"
    assert source in card.text and "**Layout: metadata-only.**" in card.text
    assert "replayed_samples" not in card.text  # no images of a non-redistributable source in its card


def test_figures_are_pngs(state):
    for name in ("assets/teacher_confidence.png", "assets/replayed_samples.png"):
        with Image.open(hf_hub_download(state.self_contained, name, repo_type="dataset")) as figure:
            assert figure.format == "PNG" and figure.width >= 300 and figure.height >= 200


def test_the_cards_code_runs(card):
    blocks = re.findall(r"```python\n(.*?)```", card.text, re.DOTALL)
    assert len(blocks) == 2
    trained: dict = {}
    exec(compile(blocks[0], "card-train", "exec"), trained)
    assert torch.isfinite(trained["loss"]) and trained["epoch"] == 1
    plain: dict = {}
    exec(compile(blocks[1], "card-load-dataset", "exec"), plain)
    sample = plain["ds"][0]
    assert sample["pixel_values"].shape == (3, 32, 32) and sample["labels"].shape == (10,)


def test_the_metadata_only_cards_code_runs(state):
    card = DatasetCard.load(state.metadata_only, repo_type="dataset")
    blocks = re.findall(r"```python\n(.*?)```", card.text, re.DOTALL)
    assert len(blocks) == 1  # no plain-Parquet snippet: the rows hold no images
    trained: dict = {}
    exec(compile(blocks[0], "card-train-metadata-only", "exec"), trained)  # joins the source repo by key
    assert torch.isfinite(trained["loss"]) and trained["epoch"] == 1
    assert trained["batch"]["pixel_values"].shape[1:] == (3, 32, 32) and trained["batch"]["labels"].shape[1] == 10


def test_statistics_match_the_stored_records(state):
    manifest, config = verify_run(state.run_dir), ReinforceConfig.load(state.run_dir)
    paths = [os.path.join(state.run_dir, s["path"]) for s in manifest["shards"]]
    stats = reinforcement_stats(paths, manifest, config)
    rows = load_reinforcements(state.run_dir, keep_in_memory=True)
    records = [(row["label"], record) for row in rows for record in row["reinforcements"]]
    top1 = np.array([record["probs"][0] for _, record in records])
    assert stats["num_reinforcements"] == NUM_ROWS * NUM_SAMPLES == sum(stats["histogram"])
    assert stats["forward_passes"] == 2 * NUM_ROWS * NUM_SAMPLES
    assert stats["histogram"] == np.histogram(top1, bins=len(stats["histogram"]), range=(0, 1))[0].tolist()
    assert stats["mean_top1"] == pytest.approx(top1.mean())
    assert stats["label_agreement"] == pytest.approx(np.mean([r["ids"][0] == label for label, r in records]))


@pytest.mark.parametrize("rows, category", [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"),
                                            (50_000, "10K<n<100K"), (1_281_167, "1M<n<10M")])
def test_size_category(rows, category):
    assert size_category(rows) == category
