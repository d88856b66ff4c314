"""``TrainConfig.report_to``: fit's loss, learning rate and final metrics reach accelerate's trackers at the logging
steps (a custom ``GeneralTracker``, as accelerate accepts one), the config is stored, the run is ended; a tracker that
is not installed or not known is refused before training, where accelerate alone would drop it silently."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator
from accelerate.tracking import GeneralTracker

from hf_dr.data.transforms import EvalTransform
from hf_dr.errors import ConfigConflictError, InvalidConfigError
from hf_dr.models.students import create_model
from hf_dr.train.loop import TrainConfig, fit
from tests.training_utils import SIZE, reinforced_digits, reinforced_transform

pytestmark = pytest.mark.usefixtures("one_thread")


class RecordingTracker(GeneralTracker):
    """Keeps what accelerate hands a tracker."""

    name = "recording"
    requires_logging_directory = False

    def __init__(self) -> None:
        super().__init__()
        self.config, self.logs, self.finished = None, [], False

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values: dict) -> None:
        self.config = values

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self.logs.append((step, dict(values)))

    def finish(self) -> None:
        self.finished = True


@pytest.fixture(scope="module")
def reinforced():
    return reinforced_digits(96)


def _model():
    torch.manual_seed(0)
    return create_model("hf_dr_cnn_tiny", num_classes=10, in_chans=3)


def test_fit_reports_loss_lr_and_metrics_to_a_tracker(reinforced):
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    evaluation = EvalTransform(size=SIZE).attach(reinforced.with_format(None))
    tracker = RecordingTracker()
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, log_every=4, report_to=[tracker])
    result = fit(_model(), dataset, config, eval_dataset=evaluation)
    train_logs = [(step, values) for step, values in tracker.logs if "train/loss" in values]
    assert [step for step, _ in train_logs] == [4, 8, 12] == [record["step"] for record in result.history]
    for (_, values), record in zip(train_logs, result.history, strict=True):
        assert values == {"train/loss": record["loss"], "train/lr": record["lr"], "train/epoch": record["epoch"]}
    assert all(values["train/loss"] > 0 for _, values in train_logs)
    step, metrics = tracker.logs[-1]  # the final evaluation, at the last step
    assert step == 12 and metrics["eval/top1"] == pytest.approx(result.metrics["top1"])
    assert {"eval/nll", "eval/ece"} <= set(metrics)
    assert tracker.config["lr"] == 0.05 and tracker.config["report_to"] == "recording"
    assert "max_steps" not in tracker.config  # unset settings left out (TensorBoard's hparams refuse None)
    assert tracker.finished
    assert json.loads(json.dumps(config.to_dict()))["report_to"] == ["recording"]


def test_an_accelerator_of_your_own_reports_through_its_trackers(reinforced):
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    for started_by_caller in (False, True):
        tracker = RecordingTracker()
        accelerator = Accelerator(cpu=True, log_with=[tracker])
        if started_by_caller:
            accelerator.init_trackers("mine", config={"note": "the caller's"})
        fit(_model(), dataset, TrainConfig(max_steps=3, batch_size=16, log_every=1), accelerator=accelerator)
        assert [step for step, _ in tracker.logs] == [1, 2, 3]
        assert len(accelerator.trackers) == 1  # started once
        # fit ends the trackers it started; those the caller started stay open for the caller's own logs
        assert tracker.finished is not started_by_caller
        expected = {"note": "the caller's"} if started_by_caller else {"max_steps": 3, "batch_size": 16}
        assert expected.items() <= tracker.config.items()
    with pytest.raises(ConfigConflictError, match=r"Accelerator\(log_with=..., project_dir=...\)"):
        fit(_model(), dataset, TrainConfig(max_steps=1, batch_size=16, report_to=[RecordingTracker()]),
            accelerator=Accelerator(cpu=True))


def test_a_tracker_that_is_not_installed_or_unknown_is_refused_up_front(reinforced, tmp_path):
    from accelerate.tracking import get_available_trackers

    if "tensorboard" in {str(t) for t in get_available_trackers()}:
        pytest.skip("tensorboard is installed here")
    # what accelerate does alone: the missing tracker is dropped, and the run would report nowhere
    assert Accelerator(cpu=True, log_with="tensorboard", project_dir=str(tmp_path)).log_with == []
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InvalidConfigError, match="pip install tensorboard"):
        fit(model, dataset, TrainConfig(epochs=1, batch_size=16, report_to="tensorboard"), output_dir=str(tmp_path))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # refused before training
    with pytest.raises(InvalidConfigError, match=r"unknown tracker 'tensorbord'; known ones are \['aim', 'all'"):
        TrainConfig(report_to=["tensorbord"])
    assert TrainConfig(report_to="none").report_to == ["none"] == TrainConfig().report_to


def test_a_resumed_run_reports_from_where_it_stopped(reinforced, tmp_path):
    """The trackers are not a training setting: a run checkpointed without them resumes with them (and the other
    way), and reports the steps it trains."""
    dataset = reinforced_transform(reinforced).attach(reinforced.with_format(None))
    config = TrainConfig(max_steps=4, batch_size=16, lr=0.05, save_every=2, log_every=1)
    fit(_model(), dataset, config, output_dir=str(tmp_path))  # checkpoint at step 2 (none at the last step)
    tracker = RecordingTracker()
    result = fit(_model(), dataset, TrainConfig(**{**config.to_dict(), "report_to": [tracker]}),
                 output_dir=str(tmp_path))
    assert result.steps == 4 and [step for step, _ in tracker.logs] == [3, 4]
