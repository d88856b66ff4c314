"""The dataset card of a pushed run: it loads with ``DatasetCard.load``, its YAML validates on the server and carries
no run description, it states what the run was (teacher and hashes, fields, policy, N, k, bytes, cost, source,
limitations, license, citation), every code block of it runs as written (RGB and grayscale runs) and its figures
are real PNGs."""

from __future__ import annotations

import json
import os
import re

import datasets
import numpy as np
import pytest
import torch
from huggingface_hub import DatasetCard, HfApi, hf_hub_download
from PIL import Image

from hf_dr import push_to_hub
from hf_dr.data.codec import RecordCodec
from hf_dr.data.description import PREFIX, read_description
from hf_dr.errors import DataMismatchError
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import verify_run
from hf_dr.hub import card as card_module
from hf_dr.hub.card import reinforcement_stats, size_category
from hf_dr.hub.card_sections import data_fields, hub_model_id, teacher_metrics
from hf_dr.train.finetune import FinetuneConfig, finetune_teacher, finetune_train_config
from tests.utils_hub import (
    NUM_ROWS,
    NUM_SAMPLES,
    POLICY,
    SOURCE_LICENSE,
    TOPK,
    Published,
    published,
    run,
    server_stays_consistent,  # noqa: F401  (autouse fixture)
    unique_repo,
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
    assert data["task_ids"] == ["multi-class-image-classification"]
    assert data["annotations_creators"] == ["machine-generated"]
    assert data["source_datasets"] == [f"extended|{state.source_id}"] and data["size_categories"] == ["n<1K"]
    assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    info = data["dataset_info"]
    assert info["splits"][0]["name"] == "train" and info["splits"][0]["num_examples"] == NUM_ROWS
    assert HfApi().dataset_info(state.self_contained).card_data.license == SOURCE_LICENSE


def test_the_yaml_carries_no_run_description_and_loaders_still_read_it(state, card):
    """The run's description (policy, teacher, source, versions as JSON) rides in the records' feature id; the card's
    YAML leaves the features out, so it lists neither that JSON nor class names, and ``load_dataset`` reads the
    features, description included, from the data files."""
    head = str(card).split("\n---\n", 1)[0]
    assert PREFIX not in head and "class_names" not in head and "features" not in card.data.dataset_info

    for streaming in (False, True):
        ds = datasets.load_dataset(state.self_contained, split="train", streaming=streaming, cache_dir=state.cache_dir)
        description = read_description(ds)
        assert description is not None and description.num_samples == NUM_SAMPLES and description.topk == TOPK
        assert ds.features["label"] == state.source.features["label"]


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
    assert "## Data Fields" in text and "## Limitations" in text and "The teacher's errors propagate" in text
    assert "| `image_digest` | `int64` | a digest of the row's encoded image" in text
    assert "| `reinforcements.params.crop` | `struct{top, left, height, width, flip}` |" in text
    assert "| `reinforcements.params.randaugment` | `struct{ops, magnitudes}` |" in text
    assert f"| `reinforcements.ids` | `list<uint16>[{TOPK}]` | the teacher's top-{TOPK} classes" in text
    assert f"| `reinforcements.probs` | `list<float16>[{TOPK}]` | their probabilities (float16)" in text
    assert "| not recorded | not recorded |" in text and "No accuracy of the teacher on held-out images" in text
    assert f"`{SOURCE_LICENSE}`, carried over from the source [`{state.source_id}`]" in text


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


def run_blocks(card: DatasetCard, where) -> list[dict]:
    """Executes every Python block of ``card`` as written, in the folder ``where``; returns their namespaces."""
    blocks = re.findall(r"```python\n(.*?)```", card.text, re.DOTALL)
    namespaces = []
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(where)  # the Trainer block writes its output folder there
        for number, block in enumerate(blocks):
            namespace: dict = {}
            exec(compile(block, f"card-block-{number}", "exec"), namespace)
            namespaces.append(namespace)
    return namespaces


def check_training_blocks(namespaces: list[dict], channels: int) -> None:
    """The load, timm and Trainer blocks trained on ``channels``-channel views of the card's dataset."""
    trained, timm_block, trainer_block = namespaces[:3]
    assert torch.isfinite(trained["loss"]) and trained["epoch"] == 1
    batch = trained["batch"]
    assert batch["pixel_values"].shape[1:] == (channels, 32, 32) and batch["labels"].shape[1] == 10
    assert torch.isfinite(timm_block["loss"]) and timm_block["inputs"].shape[1:] == (channels, 32, 32)
    targets = timm_block["targets"]
    assert targets.shape[1] == 10 and torch.allclose(targets.sum(1), torch.ones(1), atol=1e-3)
    assert trainer_block["trainer"].state.global_step == 1
    assert np.isfinite(trainer_block["trainer"].state.log_history[-1]["train_loss"])


def test_the_cards_code_runs(card, tmp_path):
    namespaces = run_blocks(card, tmp_path)
    assert len(namespaces) == 4  # load and train, timm, Trainer, plain Parquet
    check_training_blocks(namespaces, channels=3)
    sample = namespaces[3]["ds"][0]
    assert sample["pixel_values"].shape == (3, 32, 32) and sample["labels"].shape == (10,)


def test_the_metadata_only_cards_code_runs(state, tmp_path):
    card = DatasetCard.load(state.metadata_only, repo_type="dataset")
    namespaces = run_blocks(card, tmp_path)  # each joins the source repo by key
    assert len(namespaces) == 3  # no plain-Parquet snippet: the rows hold no images
    check_training_blocks(namespaces, channels=3)


@pytest.fixture(scope="module")
def gray(state, tmp_path_factory) -> tuple[str, str]:
    """A grayscale run (image_mode "L") of the digits recorded as the bundled ``digits``, by a teacher fine-tuned
    here (its eval metrics recorded beside its weights), pushed with a license of the publisher's: its repo and the
    teacher's folder."""
    root = tmp_path_factory.mktemp("gray")
    config = FinetuneConfig("test_resnet", num_members=1, pretrained=False, image_size=32, preload=True,
                            train=finetune_train_config(epochs=1, batch_size=16, num_workers=0))
    result = finetune_teacher(state.source, config, str(root / "teacher"), eval_dataset=state.source,
                              key_column="key", progress=False)
    with open(result.spec_path) as file:
        members = json.load(file)
    run_dir = run(state.source, members, root / "run", image_mode="L", source={"id": "digits", "split": "train"})
    repo = unique_repo("digits-gray")
    push_to_hub(run_dir, repo, dataset=state.source, license="mit")
    return repo, result.output_dir


def test_a_grayscale_cards_code_runs_with_one_input_channel(gray, tmp_path):
    """Before: the card recorded image_mode L but its resnet snippets built 3-channel models (a raw conv error)."""
    card = DatasetCard.load(gray[0], repo_type="dataset")
    namespaces = run_blocks(card, tmp_path)
    assert len(namespaces) == 4
    assert re.findall(r"in_chans=(\d)", card.text) == ["1", "1", "1"]  # the models of the three training blocks
    assert "input_size=(1, 32, 32)" in card.text
    check_training_blocks(namespaces, channels=1)
    assert namespaces[3]["ds"][0]["pixel_values"].shape == (1, 32, 32)


def test_a_bundled_source_is_not_linked_and_a_given_license_is_the_publishers(gray):
    card = DatasetCard.load(gray[0], repo_type="dataset")
    card.validate(repo_type="dataset")
    assert "huggingface.co/datasets/digits" not in card.text and card.data.source_datasets is None
    assert "reinforced** version of\nthe bundled `digits` dataset (`hf_dr.data.bundled`)" in card.text
    assert card.data.license == "mit" and "`mit`, chosen by the publisher of this dataset." in card.text
    assert "carried over" not in card.text


def test_the_teacher_metrics_fine_tuning_recorded_are_on_the_card(gray):
    card = DatasetCard.load(gray[0], repo_type="dataset")
    with open(os.path.join(gray[1], "finetune_metrics.json")) as file:
        recorded = json.load(file)
    member, ensemble = recorded["members"][0]["metrics"], recorded["ensemble"]
    assert f"| {100 * member['top1']:.2f}% | {100 * member['ece']:.2f}% |" in card.text
    assert (f"The ensemble, as it labelled these records, scored top-1 {100 * ensemble['top1']:.2f}%, NLL "
            f"{ensemble['nll']:.3f}\nand ECE {100 * ensemble['ece']:.2f}% on {NUM_ROWS} held-out images") in card.text


def test_teacher_metrics_match_members_by_their_weights(gray, tmp_path):
    folder = gray[1]
    spec = json.load(open(os.path.join(folder, "teacher_spec.json")))[0]
    found = teacher_metrics([{"spec": spec}])
    assert found["members"][0]["top1"] == found["ensemble"]["top1"]  # one member: the ensemble is that member
    other = {"spec": {"arch": "test_resnet", "weights": str(tmp_path / "elsewhere.safetensors")}}
    assert teacher_metrics([{"spec": spec}, other]) == {"members": [found["members"][0], None], "ensemble": None,
                                                         "calibration": None}  # not the ensemble fine-tuning made


def test_a_split_with_other_columns_is_refused_by_the_footer_of_the_other_splits_file(state, monkeypatch):
    """The card lists no features, so the other split's columns come from its data file's footer (here read in two
    requests: the footer is longer than the first read)."""
    monkeypatch.setattr(card_module, "FOOTER_BYTES", 64)
    repo = unique_repo("footer")
    push_to_hub(state.run_dir, repo, layout="metadata-only", compression_level=3, split="test")
    assert "features" not in DatasetCard.load(repo, repo_type="dataset").data.dataset_info
    with pytest.raises(DataMismatchError, match=r"holds the splits \['test'\] with the columns \['key', 'label', "):
        push_to_hub(state.run_dir, repo, dataset=state.source, split="train")  # self-contained beside metadata-only
    push_to_hub(state.run_dir, repo, layout="metadata-only", compression_level=3, split="train")  # same columns
    text = DatasetCard.load(repo, repo_type="dataset").text
    assert f"| `test` | {NUM_ROWS} |" in text and f"| `train` (described here) | {NUM_ROWS} |" in text


def test_hub_members_are_linked():
    assert hub_model_id({"arch": "resnet50.a1_in1k"}) == "timm/resnet50.a1_in1k"
    assert hub_model_id({"arch": "hf-hub:me/teacher"}) == "me/teacher"
    assert hub_model_id({"arch": "resnet50", "weights": "/w/r50.safetensors"}) is None


def test_statistics_match_the_stored_records(state):
    manifest, config = verify_run(state.run_dir), ReinforceConfig.load(state.run_dir)
    paths = [os.path.join(state.run_dir, s["path"]) for s in manifest["shards"]]
    stats = reinforcement_stats(paths, manifest, config)
    rows = load_run_records(state.run_dir, keep_in_memory=True)
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



@pytest.mark.parametrize(("codec", "expected"), [
    (RecordCodec(params="seeded", labels="sampled", draws=8, temperature=2.0),
     ["| `classes` | `list<uint16>` | the row's set of teacher classes",
      "| `reinforcements.params.check` | `uint32` | a 32-bit checksum of the parameters",
      "| `reinforcements.params.partner_key` | `string` | the key of the row mixed in",
      "| `reinforcements.counts` | `list<uint8>` | how often each was drawn of 8; the target is counts / 8"]),
    (RecordCodec(labels="q8-topk-set"),
     ["| `reinforcements.params.mixing` | `struct{mode, lam, top, left, height, width, partner_key, partner}` |",
      "| `reinforcements.ids` | `list<uint8>[3]` | the teacher's top-3 classes, most probable first (positions in the "
      "row's `classes`)",
      "| `reinforcements.probs` | `list<uint8>[4]` | 8-bit log codes of the top-3 probabilities, then of the mass"]),
])
def test_data_fields_follow_the_codec(codec, expected):
    """Each codec's records are described by the fields they store (from the pushed files' features)."""
    from hf_dr import create_policy

    policy = create_policy("rrc+mix+ra_re")
    record = codec.record_features(policy, topk=3, num_classes=10, num_samples=4)
    features = datasets.Features({"key": datasets.Value("string"), **codec.row_features(10),
                                  "reinforcements": datasets.List(record)})
    rows = data_fields(features, {"key": "key", "reinforcements": "reinforcements"}, codec, 10, 3, 4)
    table = "\n".join(f"| `{r['name']}` | `{r['type']}` | {r['meaning']} |" for r in rows)
    for line in expected:
        assert line in table, table
