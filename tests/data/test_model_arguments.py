"""``hf_dr.model_arguments``: a student's classes and input channels read from reinforced data (a grayscale run gives
``in_chans=1``), through every wrapper a training loop puts around it (DataLoader, Subset, timm's loader, derived
streams, ``split_dataset_by_node``); data without a replay is refused with the fix."""

from __future__ import annotations

import datasets
import pytest
import safetensors.torch
import timm
import torch
from datasets.distributed import split_dataset_by_node

from hf_dr import (
    ReinforcedTransform,
    create_policy,
    create_reinforced_loader,
    load_run_records,
    model_arguments,
    reinforce,
)
from hf_dr.data.bundled import load_bundled
from hf_dr.data.streaming import empty_reinforcements, stream_replay
from hf_dr.errors import InvalidConfigError
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16


@pytest.fixture(scope="module")
def gray(tmp_path_factory) -> tuple[datasets.Dataset, str]:
    """Grayscale digits and a run of a one-channel teacher over them (its description records image mode "L")."""
    folder = tmp_path_factory.mktemp("gray")
    digits = load_bundled("digits", "train").select(range(12))
    weights = str(folder / "teacher.safetensors")
    safetensors.torch.save_file(timm.create_model("test_resnet", num_classes=10, in_chans=1).state_dict(), weights)
    teacher = {"arch": "test_resnet", "weights": weights, "input_size": [1, SIZE, SIZE]}
    run = reinforce(digits, [teacher], "rrc", num_samples=2, topk=3, seed=0, key_column="key",
                    output_dir=str(folder / "run"), num_workers=0, progress=False)
    return digits, run


def _attached(gray) -> datasets.Dataset:
    digits, run = gray
    images = digits.select(range(len(digits)))  # a fresh object: attach sets its format
    return ReinforcedTransform(load_run_records(run), size=SIZE).attach(images)


def test_a_grayscale_run_gives_a_one_channel_student_through_every_wrapper(gray):
    dataset = _attached(gray)
    expected = {"num_classes": 10, "in_chans": 1}
    wrappers = [dataset, torch.utils.data.DataLoader(dataset, batch_size=4),
                torch.utils.data.Subset(dataset, [0, 1]), dataset.shuffle(seed=0).select(range(4)),
                create_reinforced_loader(dataset, input_size=SIZE, batch_size=4, num_workers=0)]
    for wrapped in wrappers:
        assert model_arguments(wrapped) == expected, type(wrapped).__name__
    student = timm.create_model("test_resnet", **model_arguments(dataset))
    batch = torch.stack([dataset[i]["pixel_values"] for i in range(2)])
    assert batch.shape[1] == 1 and student(batch).shape == (2, 10)


def test_timms_loader_on_gray_data_feeds_the_student_built_from_it(gray):
    loader = create_reinforced_loader(_attached(gray), input_size=SIZE, batch_size=4, num_workers=0)
    student = timm.create_model("test_resnet", **model_arguments(loader))
    inputs, targets = next(iter(loader))
    assert student(inputs).shape == targets.shape == (4, 10)


def test_streams_and_what_is_derived_from_them_keep_the_replay():
    digits = digits_dataset(8)
    table = reinforce_in_memory(digits, create_policy("rrc"), ProjectionTeacher(size=SIZE), 2, topk=3)
    rows = datasets.concatenate_datasets([digits, table.remove_columns("key")], axis=1)
    transform = ReinforcedTransform(empty_reinforcements(rows.features, "key", "reinforcements"), "rrc",
                                    num_classes=10, size=SIZE)
    stream = stream_replay(rows.to_iterable_dataset(num_shards=2), transform, "image", "key", "reinforcements")
    derived = [stream, stream.shuffle(seed=0, buffer_size=4).map(lambda row: row),
               split_dataset_by_node(stream, rank=1, world_size=2), torch.utils.data.DataLoader(stream)]
    for wrapped in derived:  # an in-memory table records no image mode: RGB views (3 channels)
        assert model_arguments(wrapped) == {"num_classes": 10, "in_chans": 3}, type(wrapped).__name__


def test_data_without_a_replay_is_refused_with_the_fix(gray):
    digits, _ = gray
    with pytest.raises(InvalidConfigError, match=r"Dataset holds no reinforced replay.*load_reinforced.*num_classes"):
        model_arguments(digits)
    with pytest.raises(InvalidConfigError, match="DataLoader holds no reinforced replay"):
        model_arguments(torch.utils.data.DataLoader(digits))


def test_a_data_config_sets_the_channels_of_a_run_without_a_recorded_mode():
    digits = digits_dataset(4)
    table = reinforce_in_memory(digits, create_policy("rrc"), ProjectionTeacher(size=SIZE), 2, topk=3)
    config = {"input_size": (1, SIZE, SIZE), "mean": (0.5,), "std": (0.5,)}
    transform = ReinforcedTransform(table, "rrc", num_classes=10, data_config=config)
    assert model_arguments(transform) == {"num_classes": 10, "in_chans": 1}
