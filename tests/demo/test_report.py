"""The demo's report (hf_dr.demo.report) on fixed numbers: the mean and spread per arm, the gain against two
standard deviations, every row of the table, and the warnings for runs at chance and a teacher no better than the
plain students (moved from test_run.py)."""

from __future__ import annotations

import pytest

from hf_dr.demo.config import DemoConfig
from hf_dr.demo.report import format_table, mean_std, summarize

TABLE_ROWS = ("Plain", "Reinforced", "Online KD", "Teacher ensemble", "Reinforcement (N=")


def test_mean_std_is_over_seeds_with_no_spread_for_one():
    assert mean_std([0.8, 0.9]) == pytest.approx((0.85, 0.0707107), rel=1e-5)
    assert mean_std([0.8]) == (0.8, 0.0)


def test_summary_and_table_on_fixed_numbers():
    runs = [{"arm": "plain", "seed": s, "top1": t, "nll": 0.5, "ece": 0.05, "wall_time": 10.0, "steps": 100}
            for s, t in enumerate((0.80, 0.81, 0.82))]
    runs += [{"arm": "reinforced", "seed": s, "top1": t, "nll": 0.4, "ece": 0.01, "wall_time": 11.0, "steps": 100}
             for s, t in enumerate((0.84, 0.85, 0.86))]
    runs += [{"arm": "online_kd", "seed": 0, "top1": 0.85, "nll": 0.4, "ece": 0.01, "wall_time": 33.0, "steps": 100}]
    summary = summarize(runs)
    assert summary["gain"]["top1_points"] == pytest.approx(4.0)
    assert summary["gain"]["max_std_points"] == pytest.approx(1.0)
    assert summary["gain"]["exceeds_2_std"] is True
    results = {"config": DemoConfig().to_dict(), "summary": summary, "runs": runs, "total_seconds": 600.0,
               "ensemble": {"top1": 0.92, "nll": 0.25, "ece": 0.01, "members": 4, "train_seconds": 200.0,
                            "num_samples": 10000},
               "reinforcement": {"seconds": 30.0, "bytes": 2e6, "num_samples": 10, "topk": 5, "images": 5000}}
    table = format_table(results)
    for row in TABLE_ROWS:
        assert row in table
    assert "82.00 ± 1.00" not in table and "85.00 ± 1.00" in table and "+4.00 points" in table
    assert "3.0x its training time" in table and "Warning" not in table
    # issue 14: seeds that ended at chance (10.6%) passed as results; they are named now
    collapsed = [*runs, {**runs[0], "seed": 7, "top1": 0.106}]
    table = format_table({**results, "runs": collapsed, "summary": summarize(collapsed),
                          "data": {"dataset": "x", "subset_rows": 100, "teacher_rows": 1000, "num_classes": 10}})
    assert "Warning: 1 run(s) ended at chance (10%): plain seed 7 (10.6%)" in table
    # a teacher no better than the plain students is named, not passed as a setting that should gain
    weak = format_table({**results, "ensemble": {**results["ensemble"], "top1": 0.82}})
    assert "Warning: the teacher (82.00%) is within 2 points of the plain students (81.00%)" in weak
