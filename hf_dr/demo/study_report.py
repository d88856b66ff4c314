"""The tables and plots of ``hf-dr study`` (:mod:`hf_dr.demo.study`), from its run records.

Each table is a list of rows (JSON, in ``results.json`` under ``"tables"``) and a Markdown rendering
(``tables.md``); ``epochs.png`` plots accuracy against training time per arm (the paper's Fig. 1 analog) and
``robustness.png`` the top-1 per corruption. Means and standard deviations are over seeds.

Example:
    >>> runs = [{"study": "baseline", "arm": a, "arch": "cnn", "seed": s, "top1": t, "ece": 0.02, "nll": 0.2,
    ...          "wall_time": 10.0, "steps": 100, "epochs": 10, "params": 5}
    ...         for a, tops in (("plain", (0.90, 0.91)), ("reinforced", (0.94, 0.95))) for s, t in enumerate(tops)]
    >>> row = architecture_rows(runs, ["cnn"])[0]
    >>> round(row["gain_points"], 2), row["exceeds_2_std"]
    (4.0, True)
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from hf_dr.demo.report import collapse_warning, mean_std, save_figure, teacher_warning
from hf_dr.files import write_json_atomic, write_text_atomic

ARM_NAMES = {"plain": "Plain", "reinforced": "Reinforced", "online_kd": "Online KD"}
METRICS = ("top1", "ece")
COLORS = {"plain": "#7f7f7f", "reinforced": "#d62728", "online_kd": "#1f77b4"}


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    mean, std = mean_std(values)
    return {"mean": mean, "std": std, "n": len(values)}


def _pm(stats: dict[str, float], scale: float = 100.0) -> str:
    return "–" if not stats["n"] else f"{scale * stats['mean']:.2f} ± {scale * stats['std']:.2f}"


def _select(runs: list[dict[str, Any]], **tags: Any) -> list[dict[str, Any]]:
    return [r for r in runs if all(r.get(k) == v for k, v in tags.items())]


def _baseline(runs: list[dict[str, Any]], arm: str, arch: str | None = None) -> list[dict[str, Any]]:
    """The runs of ``arm`` at the default length on the full reinforcement (no curriculum, no selection)."""
    return [r for r in runs if r["arm"] == arm and r["study"] in ("baseline", "architectures")
            and (arch is None or r["arch"] == arch)]


def architecture_rows(runs: list[dict[str, Any]], architectures: list[str]) -> list[dict[str, Any]]:
    """Per architecture: plain and reinforced top-1 and ECE over seeds, the gain and whether it exceeds 2 std."""
    rows = []
    for arch in architectures:
        plain, reinforced = _baseline(runs, "plain", arch), _baseline(runs, "reinforced", arch)
        if not plain or not reinforced:
            continue
        p, r = _stats([x["top1"] for x in plain]), _stats([x["top1"] for x in reinforced])
        gain, spread = r["mean"] - p["mean"], max(p["std"], r["std"])
        rows.append({"arch": arch, "params": plain[0].get("params"), "steps": plain[0]["steps"],
                     "epochs": plain[0].get("epochs"), "plain": p, "reinforced": r, "gain_points": 100 * gain,
                     "exceeds_2_std": bool(gain > 2 * spread),
                     "plain_ece": _stats([x["ece"] for x in plain]),
                     "reinforced_ece": _stats([x["ece"] for x in reinforced]),
                     "min_top1": min(x["top1"] for x in plain + reinforced),
                     "wall_time": _stats([x["wall_time"] for x in plain + reinforced])})
    return rows


def robustness_rows(runs: list[dict[str, Any]], arch: str) -> list[dict[str, Any]]:
    """Per corruption (averaged over its severities, per seed), and clean: top-1 and ECE of each arm."""
    by_arm = {arm: [r for r in _baseline(runs, arm, arch) if r.get("evaluations")] for arm in ARM_NAMES}
    names = sorted({k.rsplit("-", 1)[0] for rs in by_arm.values() for r in rs for k in r["evaluations"]})
    if not names:
        return []

    def per_seed(run: dict[str, Any], name: str | None, metric: str) -> float:
        if name is None:
            return run[metric]
        values = [m[metric] for k, m in run["evaluations"].items() if k.rsplit("-", 1)[0] == name]
        return statistics.fmean(values)

    rows = []
    for name in [None, *names, "mean"]:
        row: dict[str, Any] = {"corruption": name or "clean"}
        for arm, arm_runs in by_arm.items():
            for metric in ("top1", "ece"):
                if name == "mean":
                    values = [statistics.fmean(per_seed(r, n, metric) for n in names) for r in arm_runs]
                else:
                    values = [per_seed(r, name, metric) for r in arm_runs]
                row[f"{arm}_{metric}"] = _stats(values)
        rows.append(row)
    return rows


def epochs_rows(runs: list[dict[str, Any]], arch: str) -> list[dict[str, Any]]:
    """Per training length and arm: top-1, ECE and training time per run."""
    rows = []
    lengths = sorted({r["epochs"] for r in runs if r["study"] == "epochs"} | {r["epochs"] for r in
                                                                               _baseline(runs, "plain", arch)})
    for epochs in lengths:
        for arm in ARM_NAMES:
            chosen = [r for r in runs if r["arm"] == arm and r["epochs"] == epochs and r["arch"] == arch and
                      (r["study"] == "epochs" or r in _baseline(runs, arm, arch))]
            if chosen:
                rows.append({"epochs": epochs, "arm": arm, "steps": chosen[0]["steps"],
                             "top1": _stats([r["top1"] for r in chosen]), "ece": _stats([r["ece"] for r in chosen]),
                             "wall_time": _stats([r["wall_time"] for r in chosen])})
    return rows


def options_rows(runs: list[dict[str, Any]], results: dict[str, Any], arch: str) -> list[dict[str, Any]]:
    """Plain, the full replay, each curriculum and each selection rule: top-1, ECE and what is stored."""
    reinforcement = results["reinforcement"]
    full = _baseline(runs, "reinforced", arch)
    reference = _stats([r["top1"] for r in full])
    options = [("plain", "Plain (no reinforcement)", _baseline(runs, "plain", arch), 0, 0),
               ("reinforced", f"Reinforced, uniform replay of all N={reinforcement['num_samples']}", full,
                reinforcement["num_samples"], reinforcement["bytes"])]
    names = dict.fromkeys(r["curriculum"] for r in runs if r["study"] == "curricula")
    options += [(f"curriculum:{n}", f"Curriculum {n}", _select(runs, study="curricula", curriculum=n),
                 reinforcement["num_samples"], reinforcement["bytes"]) for n in names]
    for rule, selected in (results.get("selections") or {}).items():
        options.append((f"selection:{rule}", f"Selection {rule}, N'={selected['keep']}",
                        _select(runs, study="selection", selection=rule), selected["keep"], selected["bytes"]))
    rows = []
    for key, label, chosen, stored, size in options:
        if chosen:
            top1 = _stats([r["top1"] for r in chosen])
            rows.append({"option": key, "label": label, "records": stored, "bytes": size, "top1": top1,
                         "ece": _stats([r["ece"] for r in chosen]), "steps": chosen[0]["steps"],
                         "vs_full_points": 100 * (top1["mean"] - reference["mean"]) if reference["n"] else None})
    return rows


def build_tables(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows (see the module docstring)."""
    config, runs = results["config"], results["runs"]
    arch = config["demo"]["student_arch"]
    architectures = list(dict.fromkeys([arch, *config["architectures"]]))
    return {"architectures": architecture_rows(runs, architectures), "robustness": robustness_rows(runs, arch),
            "epochs": epochs_rows(runs, arch), "options": options_rows(runs, results, arch)}


def format_tables(results: dict[str, Any]) -> str:
    """The Markdown of every table, with the setting it was measured in."""
    tables, data, ens = results["tables"], results["data"], results["ensemble"]
    demo = results["config"]["demo"]
    lines = [f"## `{data['dataset']}`: teachers on {data['teacher_rows']:,} images, students on "
             f"{data['subset_rows']:,}, test {data['test_rows']:,}",
             "",
             f"Teacher ensemble ({ens['members']} x `{demo['teacher_arch']}`): top-1 {100 * ens['top1']:.2f}%, ECE "
             f"{100 * ens['ece']:.2f}%. Reinforcement: N={results['reinforcement']['num_samples']}, "
             f"k={results['reinforcement']['topk']}, {results['reinforcement']['bytes'] / 1e6:.2f} MB. Student seeds "
             f"{demo['seeds']}; every arm of a row trains for the same steps. Total "
             f"{results['total_seconds'] / 60:.1f} min on {demo['num_threads']} threads.", ""]
    plain = [r["top1"] for r in _baseline(results["runs"], "plain", demo["student_arch"])]
    for warning in (collapse_warning(results["runs"], data.get("num_classes")),
                    teacher_warning(ens["top1"], statistics.fmean(plain) if plain else None)):
        lines += [warning, ""] if warning else []
    lines += _section("Architectures (one reinforced subset)",
                      ["Student", "Params", "Steps", "Plain top-1 (%)", "Reinforced top-1 (%)", "Gain (points)",
                       "> 2 std", "Plain ECE (%)", "Reinforced ECE (%)"],
                      [[f"`{r['arch']}`", f"{r['params']:,}", r["steps"], _pm(r["plain"]), _pm(r["reinforced"]),
                        f"{r['gain_points']:+.2f}", "yes" if r["exceeds_2_std"] else "no", _pm(r["plain_ece"]),
                        _pm(r["reinforced_ece"])] for r in tables["architectures"]])
    lines += _section(f"Robustness (`{demo['student_arch']}`; each corruption averaged over severities "
                      f"{results['config']['severities']})",
                      ["Test set", *(f"{ARM_NAMES[arm]} {name}" for name in ("top-1", "ECE") for arm in ARM_NAMES)],
                      [[r["corruption"], *(_pm(r[f"{arm}_{metric}"]) for metric in METRICS for arm in ARM_NAMES)]
                       for r in tables["robustness"]])
    lines += _section("Training length (`epochs.png`)",
                      ["Epochs", "Steps", "Arm", "Runs", "Top-1 (%)", "ECE (%)", "Train time / run (s)"],
                      [[r["epochs"], r["steps"], ARM_NAMES[r["arm"]], r["top1"]["n"], _pm(r["top1"]), _pm(r["ece"]),
                        f"{r['wall_time']['mean']:.1f}"] for r in tables["epochs"]])
    lines += _section("Curricula and sample selection (same steps)",
                      ["Option", "Records per image", "Stored (MB)", "Top-1 (%)", "ECE (%)", "vs all N (points)"],
                      [[r["label"], r["records"] or "–", f"{r['bytes'] / 1e6:.3f}", _pm(r["top1"]), _pm(r["ece"]),
                        "–" if r["vs_full_points"] is None or r["option"] == "reinforced" else
                        f"{r['vs_full_points']:+.2f}"] for r in tables["options"]])
    return "\n".join(lines)


def _section(title: str, header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table under a ``###`` title; nothing without rows."""
    if not rows:
        return []
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows] + [""]


def plot_epochs(results: dict[str, Any], path: str | Path) -> Path:
    """Top-1 against training time per run, one line per arm over the training lengths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, name in ARM_NAMES.items():
        rows = [r for r in results["tables"]["epochs"] if r["arm"] == arm]
        if rows:
            ax.errorbar([r["wall_time"]["mean"] for r in rows], [100 * r["top1"]["mean"] for r in rows],
                        yerr=[100 * r["top1"]["std"] for r in rows], marker="o", capsize=3, color=COLORS[arm],
                        label=name)
            for r in rows:
                ax.annotate(f"{r['epochs']}", (r["wall_time"]["mean"], 100 * r["top1"]["mean"]), fontsize=7,
                            textcoords="offset points", xytext=(3, -9))
    ax.set_xscale("log")
    ax.set_xlabel("student training time per run (s, log; labels: epochs)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{results['data']['dataset']}: accuracy against training time")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_robustness(results: dict[str, Any], path: str | Path) -> Path:
    """Top-1 per test set (clean, each corruption, their mean), bars per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = results["tables"]["robustness"]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4))
    x = np.arange(len(rows))
    arms = [a for a in ARM_NAMES if rows and rows[0][f"{a}_top1"]["n"]]
    for i, arm in enumerate(arms):
        ax.bar(x + (i - (len(arms) - 1) / 2) * 0.8 / len(arms), [100 * r[f"{arm}_top1"]["mean"] for r in rows],
               0.8 / len(arms), yerr=[100 * r[f"{arm}_top1"]["std"] for r in rows], color=COLORS[arm],
               label=ARM_NAMES[arm], capsize=2)
    ax.set_xticks(x, [r["corruption"] for r in rows], rotation=20, fontsize=8)
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"{results['data']['dataset']}: corrupted test sets")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def write_report(out: Path, results: dict[str, Any]) -> None:
    """``results.json``, ``tables.md``, ``epochs.png`` and ``robustness.png`` (each when it has rows), atomically."""
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "tables.md", format_tables(results) + "\n")
    if results["tables"]["epochs"]:
        plot_epochs(results, out / "epochs.png")
    if results["tables"]["robustness"]:
        plot_robustness(results, out / "robustness.png")
