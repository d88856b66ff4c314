"""verify: passes on a fresh run; fails, naming the cause, on replay drift, misaligned source rows, another teacher."""

from __future__ import annotations

import pytest

from hf_dr import create_policy
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run import reinforce
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.verify import verify
from hf_dr.models.teacher import create_teacher
from tests.data_utils import digits_dataset
from tests.utils_teacher import save_teacher

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verify")
    images = digits_dataset(40)
    member = save_teacher(str(folder / "teachers"), seed=0)
    out = str(folder / "run")
    reinforce(images, [member], "rrc+ra_re", num_samples=4, topk=5, seed=0, output_dir=out, key_column="key",
              shard_size=20, num_workers=0, progress=False)
    return images, load_run_records(out), ReinforceConfig.load(out), str(folder / "teachers")


def test_fresh_run_passes(run):
    images, reinforcements, config, _ = run
    report = verify(reinforcements, images, config, num_pairs=30)
    assert report.passed, report.summary()
    assert report.top1_agreement == 1.0 and report.max_abs_prob_diff < 2e-3 and report.checked == 30
    assert "PASSED" in report.summary()


def test_changed_replay_op_fails(run):
    """A library drift simulated by replaying RandAugment's geometric ops with another interpolation."""
    images, reinforcements, config, _ = run
    drifted = create_policy("rrc+ra_re", randaugment={"interpolation": "bilinear"})
    report = verify(reinforcements, images, config, num_pairs=30, policy=drifted)
    assert not report.passed and report.max_abs_prob_diff > 0.005
    assert "augmentation op or its settings changed" in report.likely_cause


def test_source_rows_misaligned_with_keys_fail(run):
    """Images reordered against their key column: every key now points at another digit."""
    images, reinforcements, config, _ = run
    shuffled = images.remove_columns("key").add_column("key", list(reversed(images["key"])))
    report = verify(reinforcements, shuffled, config, num_pairs=30)
    assert not report.passed
    assert report.max_abs_prob_diff > 0.05
    assert "source rows changed" in report.likely_cause


def test_reordered_rows_with_their_keys_still_pass(run):
    images, reinforcements, config, _ = run
    report = verify(reinforcements, images.shuffle(seed=1).flatten_indices(), config, num_pairs=20)
    assert report.passed and report.source_changes  # noted, harmless: samples are matched by key


def test_other_teacher_fails_and_is_named(run):
    images, reinforcements, config, teachers = run
    other = create_teacher([save_teacher(teachers, seed=7)])
    report = verify(reinforcements, images, config, teacher=other, num_pairs=30)
    assert not report.passed
    assert "teacher differs" in report.likely_cause


def test_cli_verify_and_show_on_a_run_folder(tmp_path, capsys):
    """`hf-dr reinforce` on a saved dataset, then `hf-dr verify` (exit 0) and `hf-dr show` (a PNG read back)."""
    from PIL import Image

    from hf_dr.cli import main

    source = str(tmp_path / "digits")
    digits_dataset(12).save_to_disk(source)
    member = save_teacher(str(tmp_path / "teachers"), seed=0)
    out = str(tmp_path / "run")
    assert main(["reinforce", "--dataset", source, "--teacher", f"{member['arch']}={member['weights']}",
                 "--policy", "rrc+mix+ra_re", "--num-samples", "5", "--topk", "3", "--key-column", "key",
                 "--output-dir", out, "--num-workers", "0", "--no-progress"]) == 0
    assert main(["verify", out, "--samples", "12"]) == 0
    assert "PASSED" in capsys.readouterr().out
    grid_path = str(tmp_path / "grid.png")
    assert main(["show", out, "--key", "digit-00003", "--count", "5", "--size", "48", "--columns", "3",
                 "-o", grid_path]) == 0
    grid = Image.open(grid_path)
    # 6 panels: original + 5, in two rows of three columns, each as wide as a panel or its widest caption word
    assert grid.width % 3 == 0 and grid.width >= 3 * 48 and grid.height > 2 * 48
    assert main(["verify", str(tmp_path / "nowhere")]) == 1
    assert "not a reinforce output folder" in capsys.readouterr().err


def test_any_key_column_name_works_and_checks_several_records_per_row(tmp_path):
    """Bug (issue 11): verify read a column literally named 'key' and at most one record per row."""
    images = digits_dataset(6).rename_column("key", "image_id")
    member = save_teacher(str(tmp_path / "teachers"), seed=0)
    out = str(tmp_path / "run")
    reinforce(images, [member], "rrc", num_samples=5, topk=3, seed=0, output_dir=out, key_column="image_id",
              num_workers=0, progress=False)
    report = verify(load_run_records(out), images, ReinforceConfig.load(out), num_pairs=20)
    assert report.passed, report.summary()
    assert report.checked == 20  # 6 rows x 5 records: 20 distinct records, several per row
    from hf_dr.generate.run_inspection import sample_grid  # `hf-dr show` too

    grid = sample_grid(load_run_records(out), images, ReinforceConfig.load(out), index=2, count=3, size=32)
    assert grid.size[0] > 32


def test_a_limited_run_is_compared_with_the_rows_it_covered(run, tmp_path):
    """A run over the first rows of a split (``--limit``) verified against the whole split: no "source changed"
    (it used to report "12 rows reinforced, 40 now"); a run over other rows of it still notes the difference."""
    images, _, _, teachers = run
    member = save_teacher(teachers, seed=0)
    for rows, changed in [(range(12), False), (range(5, 17), True)]:
        out = str(tmp_path / f"run-{rows.start}")
        reinforce(images.select(rows), [member], "rrc", num_samples=2, topk=3, seed=0, output_dir=out,
                  key_column="key", shard_size=8, num_workers=0, progress=False)
        report = verify(load_run_records(out), images, ReinforceConfig.load(out), num_pairs=8)
        assert report.passed, report.summary()
        assert bool(report.source_changes) == changed and ("source changed" in report.summary()) == changed
        if changed:
            assert report.source_changes[0] == "12 rows reinforced, 40 now"


def test_the_old_samples_keyword_still_works_and_warns(tmp_path):
    """Issue 20: the Python API speaks the CLI's vocabulary (--num-pairs); the old keyword is kept one release."""
    import warnings

    from hf_dr.data.bundled import load_bundled
    from tests.utils_teacher import save_teacher

    digits = load_bundled("digits", "train").select(range(6))
    run = reinforce(digits, [save_teacher(str(tmp_path))], "rrc", num_samples=2, topk=3, seed=0,
                    output_dir=str(tmp_path / "run"), num_workers=0, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = verify(load_run_records(run), digits, ReinforceConfig.load(run), samples=3)
    assert report.checked == 3 and any("num_pairs" in str(w.message) for w in caught)


def test_a_changed_stored_probability_fails_naming_its_row_key_and_record(run):
    """Issue 24: a failing check names the pair that differs most (it used to give only the largest difference)."""
    images, reinforcements, config, _ = run
    row = 7

    def change(example, index):
        if index == row:
            example["reinforcements"][2]["probs"][0] -= 0.2
        return example

    changed = reinforcements.map(change, with_indices=True, features=reinforcements.features)
    report = verify(changed, images, config, num_pairs=len(images) * config.num_samples)
    assert not report.passed and report.max_abs_prob_diff > 0.15
    key = reinforcements[row]["key"]
    assert report.worst_pair.startswith(f"row {row} (key {key!r}), record 2: class ")
    assert f"worst pair: row {row} (key {key!r}), record 2" in report.summary()
    assert "or the stored labels were changed" in report.likely_cause
