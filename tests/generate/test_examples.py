"""``tiny_run``, the run every docstring example starts from: the bundled digits' first rows, N records each, in a
folder of its own (or the one given), with the options passed through."""

from hf_dr.generate.examples import tiny_run
from hf_dr.generate.loading import load_run_records
from hf_dr.generate.run_config import ReinforceConfig


def test_a_tiny_run_holds_n_records_of_each_of_its_rows(tmp_path):
    digits, run = tiny_run(rows=3, num_samples=4, output_dir=str(tmp_path / "run"), topk=2)
    records = load_run_records(run)
    assert run == str(tmp_path / "run") and records["key"][:] == digits["key"][:3]
    assert [len(r) for r in records["reinforcements"][:]] == [4, 4, 4]
    assert len(records[0]["reinforcements"][0]["ids"]) == 2 and ReinforceConfig.load(run).topk == 2
    assert tiny_run()[1] != tiny_run()[1]  # a new folder each call
