"""A reinforced dataset whose teacher is a Hub model verifies on another machine (issue 24): the teacher is pushed with
``hf-dr push-model``, digits are reinforced with the member ``hf-hub:ORG/NAME`` (recorded pinned to its commit), the
run is pushed (both layouts), the teacher repo moves on to other weights, and ``hf-dr verify --dataset ORG/X-plus``
in a fresh process with an empty ``HF_HOME`` fetches the recorded commit and passes; a copy with one stored
probability changed fails, naming its row; a dataset whose teacher was a local file is refused, naming the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard, HfApi, hf_hub_download

from hf_dr import push_to_hub
from hf_dr.cli import main as cli_main
from hf_dr.data.description import read_description
from hf_dr.errors import ConfigConflictError
from hf_dr.generate.run import reinforce
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.hub import card as card_module
from hf_dr.hub.card_sections import member_rows
from tests.hub_server import TEST_TOKEN, HubServer
from tests.utils_hub import published, pushed_digits, server_stays_consistent, unique_repo  # noqa: F401  (autouse fixture)
from tests.utils_hub_teacher import push_teacher

ROOT = Path(__file__).resolve().parents[2]
NUM_ROWS, NUM_SAMPLES = 24, 2
RUN = {"policy": "rrc", "num_samples": NUM_SAMPLES, "topk": 3, "seed": 0, "key_column": "key", "num_workers": 0,
       "progress": False}

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def pushed(hub: HubServer, tmp_path_factory):
    """The teacher repo (first commit: the run's teacher; second: other weights), the run and its pushed repos."""
    folder = tmp_path_factory.mktemp("verify-hub")
    teacher_id = unique_repo("digits-teacher")
    first = push_teacher(teacher_id, str(folder / "first"), seed=0)
    source_id, source_commit, digits = pushed_digits(NUM_ROWS, "digits", str(folder / "datasets-cache"))
    source = {"id": source_id, "revision": source_commit, "split": "train"}
    run_dir = reinforce(digits, [f"hf-hub:{teacher_id}"], output_dir=str(folder / "run"), source=source, **RUN)
    repos = {"self-contained": unique_repo("digits-plus"), "metadata-only": unique_repo("digits-plus-meta"),
             "tampered": unique_repo("digits-plus-tampered")}
    push_to_hub(run_dir, repos["self-contained"], dataset=digits)
    push_to_hub(run_dir, repos["metadata-only"], layout="metadata-only")
    push_to_hub(run_dir, repos["tampered"], dataset=digits)
    second = push_teacher(teacher_id, str(folder / "second"), seed=1)  # the teacher repo moves on
    return {"teacher": teacher_id, "first": first, "second": second, "run_dir": run_dir, "digits": digits, **repos}


def _fresh_verify(hub: HubServer, home: Path, repo_id: str) -> subprocess.CompletedProcess:
    """``hf-dr verify --dataset REPO`` in a new process whose Hugging Face caches are empty folders."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("HF_", "PYTHON"))}
    environment |= {"PYTHONPATH": str(ROOT), "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TEST_TOKEN,
                    "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_DATASETS_CACHE": str(home / "data"),
                    "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                    "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hf_dr", "verify", "--dataset", repo_id, "--num-pairs",
               str(NUM_ROWS * NUM_SAMPLES), "--num-threads", "1"]
    return subprocess.run(command, capture_output=True, text=True, cwd=home.parent, env=environment, timeout=300)


def test_the_run_records_the_hub_teacher_pinned(pushed):
    config = json.loads(Path(pushed["run_dir"], "reinforce_config.json").read_text())
    assert config["teacher"][0]["spec"] == {"arch": f"hf-hub:{pushed['teacher']}", "revision": pushed["first"]}
    pushed_config = json.loads(Path(hf_hub_download(pushed["self-contained"], "reinforce_config.json",
                                                    repo_type="dataset")).read_text())
    assert pushed_config["teacher"][0]["spec"]["revision"] == pushed["first"]
    rows = datasets.load_dataset(pushed["self-contained"], split="train")
    assert read_description(rows).teacher[0]["spec"] == config["teacher"][0]["spec"]  # the rows describe it too


def test_rerunning_the_finished_run_after_the_teacher_repo_moved(pushed):
    """The default branch now names other weights: the finished run is not passed off as made by them; at the
    recorded commit the rerun has nothing to do."""
    digits, run_dir, teacher_id = pushed["digits"], pushed["run_dir"], pushed["teacher"]
    moved = rf"teacher member 0 \(hf-hub:{teacher_id}\): .* holds other weights"
    with pytest.raises(ConfigConflictError, match=moved):
        reinforce(digits, [f"hf-hub:{teacher_id}"], output_dir=run_dir, **RUN)
    assert reinforce(digits, [f"hf-hub:{teacher_id}@{pushed['first']}"], output_dir=run_dir, **RUN) == run_dir
    assert ReinforceConfig.load(run_dir).teacher[0]["spec"]["revision"] == pushed["first"]


@pytest.mark.parametrize("layout", ["self-contained", "metadata-only"])
def test_a_pushed_dataset_verifies_from_a_fresh_hf_home(pushed, hub, tmp_path, layout):
    home = tmp_path / "fresh-home"
    result = _fresh_verify(hub, home, pushed[layout])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"checked {NUM_ROWS * NUM_SAMPLES} (sample, reinforcement) pairs" in result.stdout
    assert "PASSED" in result.stdout and "teacher changed" not in result.stdout
    snapshots = home / "hub" / f"models--{pushed['teacher'].replace('/', '--')}" / "snapshots"
    assert [p.name for p in snapshots.iterdir()] == [pushed["first"]]  # the recorded commit, not the newer one


def test_one_changed_stored_probability_fails_naming_its_row(pushed, hub, tmp_path):
    repo_id, row = pushed["tampered"], 5
    api = HfApi()
    name = next(f for f in api.list_repo_files(repo_id, repo_type="dataset") if f.endswith(".parquet"))
    table = pq.read_table(hf_hub_download(repo_id, name, repo_type="dataset"))
    rows = datasets.Dataset(table)

    def tamper(example, index):
        if index == row:
            example["reinforcements"][0]["probs"][0] = example["reinforcements"][0]["probs"][0] - 0.25
        return example

    changed = rows.map(tamper, with_indices=True, features=rows.features)
    path = tmp_path / "changed.parquet"
    pq.write_table(changed.data.table.replace_schema_metadata(table.schema.metadata), path)
    api.upload_file(path_or_fileobj=str(path), path_in_repo=name, repo_id=repo_id, repo_type="dataset")
    key = rows[row]["key"]
    result = _fresh_verify(hub, tmp_path / "fresh-home", repo_id)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout and f"worst pair: row {row} (key {key!r}), record 0" in result.stdout, \
        result.stdout


def test_a_local_file_teacher_and_what_is_not_a_pushed_dataset_are_refused_naming_the_fix(tmp_path_factory, capsys):
    state = published(tmp_path_factory)  # reinforced with teachers saved as local .safetensors files
    assert cli_main(["verify", "--dataset", state.self_contained]) == 1
    err = capsys.readouterr().err
    assert f"the reinforced dataset {state.self_contained!r}: teacher member 0 (test_resnet) is the local file" in err
    assert "hf-dr push-model" in err and "--teacher ARCH=FILE" in err
    assert cli_main(["verify", "--dataset", state.source_id]) == 1  # a plain dataset repo: nothing to verify
    assert f"the dataset repo {state.source_id!r} was not pushed by hf-dr" in capsys.readouterr().err
    assert cli_main(["verify", "--dataset", state.run_dir]) == 1  # a run folder given as --dataset
    assert "is a local path: pass the Hub id of a pushed reinforced dataset, or --run-dir" in capsys.readouterr().err


def test_the_card_links_hub_teachers_at_their_commit_and_says_how_to_publish_local_ones(pushed, hub, monkeypatch,
                                                                                      tmp_path_factory):
    config = json.loads(Path(pushed["run_dir"], "reinforce_config.json").read_text())
    hub_row = member_rows(config["teacher"])[0]
    assert hub_row["hub_id"] == pushed["teacher"] and not hub_row["local"]
    assert hub_row["hub_url"] == f"{hub.url}/{pushed['teacher']}/tree/{pushed['first']}"
    template = (ROOT / "cards" / "reinforced_dataset.md").read_text()  # this branch's (the import finds main's)
    monkeypatch.setattr(card_module, "default_template", lambda: template)
    repo_id = unique_repo("digits-plus-card")
    push_to_hub(pushed["run_dir"], repo_id, layout="metadata-only")
    text = " ".join(DatasetCard.load(repo_id, repo_type="dataset").text.split())
    assert f"[`{pushed['teacher']}`]({hub.url}/{pushed['teacher']}/tree/{pushed['first']})" in text
    assert f"`hf-dr verify --dataset {repo_id}` fetches them" in text
    state = published(tmp_path_factory)  # two members saved as local files
    local_id = unique_repo("digits-plus-local-card")
    push_to_hub(state.run_dir, local_id, layout="metadata-only")
    text = " ".join(DatasetCard.load(local_id, repo_type="dataset").text.split())
    assert "Members 1, 2 are local files, not on the Hub" in text
    assert "`hf-dr push-model --checkpoint FILE ORG/NAME`" in text and "`--teacher hf-hub:ORG/NAME`" in text
