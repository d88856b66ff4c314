"""The demo's report: the mean and spread of each arm over seeds (:func:`summarize`), the Markdown table
(:func:`format_table`) and the plot (:func:`plot_results`), from the results :func:`hf_dr.demo.run.run_demo` returns.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from hf_dr.demo.config import ARMS, DemoConfig
from hf_dr.files import write_atomic


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value) over seeds."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _arms(runs: list[dict[str, Any]]) -> list[str]:
    """The arms of ``runs``: :data:`ARMS` first, then the codec arms (``reinforced[NAME]``) in run order."""
    extra = [r["arm"] for r in runs if r["arm"] not in ARMS]
    return [a for a in ARMS if any(r["arm"] == a for r in runs)] + list(dict.fromkeys(extra))


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each metric per arm (over seeds)."""
    summary = {}
    for arm in _arms(runs):
        rows = [r for r in runs if r["arm"] == arm]
        if not rows:
            continue
        entry: dict[str, float] = {"runs": len(rows), "steps": rows[0]["steps"]}
        for metric in ("top1", "nll", "ece", "wall_time"):
            entry[f"{metric}_mean"], entry[f"{metric}_std"] = mean_std([r[metric] for r in rows])
        summary[arm] = entry
    if "plain" in summary and "reinforced" in summary:
        plain, reinforced = summary["plain"], summary["reinforced"]
        gain = reinforced["top1_mean"] - plain["top1_mean"]
        spread = max(plain["top1_std"], reinforced["top1_std"])
        summary["gain"] = {"top1_points": 100 * gain, "max_std_points": 100 * spread,
                           "exceeds_2_std": bool(gain > 2 * spread),
                           "ece_points": 100 * (reinforced["ece_mean"] - plain["ece_mean"])}
    return summary


def format_table(results: dict[str, Any]) -> str:
    """The demo's Markdown table: one row per arm, then the teacher and the one-time costs.

    ``results["config"]`` may be in the nested or the earlier flat layout (see :meth:`DemoConfig.from_dict`).
    """
    config, summary = DemoConfig.from_dict(results["config"]), results["summary"]
    names = {"plain": "Plain (on-the-fly aug., CE)", "reinforced": "**Reinforced** (stored aug. + soft labels)",
             "online_kd": "Online KD (teacher every step)"}
    data = results.get("data") or {"dataset": "fashion-mnist", "subset_rows": config.subset_size or 2500,
                                   "teacher_rows": config.teacher_train_size or 60_000}
    lines = [
        f"Student `{config.student_arch}` on {data['subset_rows']:,} `{data['dataset']}` images, "
        f"{results['runs'][0].get('epochs', config.student.epochs)} epochs "
        f"({summary['plain']['steps'] if 'plain' in summary else '?'} iterations), "
        f"same hyperparameters; test set of {results['ensemble']['num_samples']:,} images.",
        "",
        "| Run | Seeds | Top-1 (%) | NLL | ECE (%) | Train time / run (s) |",
        "|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        if arm not in summary:
            continue
        s = summary[arm]
        lines.append(
            f"| {names[arm]} | {s['runs']} | {100 * s['top1_mean']:.2f} ± {100 * s['top1_std']:.2f} | "
            f"{s['nll_mean']:.3f} | {100 * s['ece_mean']:.2f} ± {100 * s['ece_std']:.2f} | "
            f"{s['wall_time_mean']:.1f} |"
        )
    ens, rein = results["ensemble"], results["reinforcement"]
    lines.append(
        f"| Teacher ensemble ({ens['members']} x `{config.teacher_arch}`, {_count(data['teacher_rows'])} images"
        f"{_temperature(results)}) | – | "
        f"{100 * ens['top1']:.2f} | {ens['nll']:.3f} | {100 * ens['ece']:.2f} | "
        f"{ens['train_seconds']:.1f} (one-time) |"
    )
    lines.append(
        f"| Reinforcement (N={rein['num_samples']}, k={rein['topk']}, {rein['bytes'] / 1e6:.1f} MB) | – | – | – | – | "
        f"{rein['seconds']:.1f} (one-time) |"
    )
    if "gain" in summary:
        g = summary["gain"]
        verdict = "exceeds" if g["exceeds_2_std"] else "does not exceed"
        lines += ["", f"Reinforced − plain: {g['top1_points']:+.2f} points top-1 ({verdict} 2 x the larger std, "
                      f"{g['max_std_points']:.2f}); ECE {g['ece_points']:+.2f} points."]
    if "online_kd" in summary and "reinforced" in summary:
        kd, re_ = summary["online_kd"], summary["reinforced"]
        extra = kd["wall_time_mean"] - re_["wall_time_mean"]
        line = (f"Online KD: {100 * (kd['top1_mean'] - re_['top1_mean']):+.2f} points vs reinforced at "
                f"{kd['wall_time_mean'] / max(re_['wall_time_mean'], 1e-9):.1f}x its training time per run")
        if extra > 0:
            line += (f" (+{extra:.0f} s of teacher forward passes per run; the one-time reinforcement, "
                     f"{rein['seconds']:.0f} s, is repaid after {rein['seconds'] / extra:.1f} runs)")
        lines.append(line + ".")
    if len(results.get("codecs") or {}) > 1:
        lines += ["", format_codec_table(results)]
    for warning in (collapse_warning(results["runs"], (results.get("data") or {}).get("num_classes")),
                    teacher_warning(results["ensemble"]["top1"], summary.get("plain", {}).get("top1_mean"))):
        if warning:
            lines.append(warning)
    lines.append(f"Total wall time: {results['total_seconds'] / 60:.1f} min on {config.num_threads} threads.")
    return "\n".join(lines)


def collapse_warning(runs: list[dict[str, Any]], num_classes: int | None, margin: float = 0.05) -> str | None:
    """A warning naming the runs whose top-1 ended within ``margin`` of chance (``1 / num_classes``): a recipe
    that diverged on this data must not pass as a result. None when every run learned.

    Example:
        >>> runs = [{"arm": "plain", "seed": 1, "top1": 0.106}, {"arm": "plain", "seed": 2, "top1": 0.9}]
        >>> collapse_warning(runs, num_classes=10)
        'Warning: 1 run(s) ended at chance (10%): plain seed 1 (10.6%). The recipe diverged on this data: lower the \
learning rate (--lr) or lengthen the warmup (--warmup-fraction).'
    """
    if not num_classes:
        return None
    chance = 1.0 / num_classes
    failed = [r for r in runs if r["top1"] < chance + margin]
    if not failed:
        return None
    names = ", ".join(f"{r['arm']}{' ' + r['arch'] if r.get('arch') and r.get('study') == 'architectures' else ''} "
                      f"seed {r['seed']} ({100 * r['top1']:.1f}%)" for r in failed)
    return (f"Warning: {len(failed)} run(s) ended at chance ({100 * chance:.0f}%): {names}. The recipe diverged on "
            "this data: lower the learning rate (--lr) or lengthen the warmup (--warmup-fraction).")


def teacher_warning(teacher_top1: float, plain_top1: float | None, margin: float = 0.02) -> str | None:
    """A warning when the teacher ensemble is not clearly better than the plain students (by ``margin``): its soft
    labels then carry little the students cannot learn alone, and reinforcement may cost accuracy (measured on
    shapes: a 97.2% teacher and 96.2% plain students, reinforced 95.4%). None otherwise.

    Example:
        >>> teacher_warning(0.972, 0.962)[:52]
        'Warning: the teacher (97.20%) is within 2 points of '
        >>> teacher_warning(0.99, 0.91) is None
        True
    """
    if plain_top1 is None or teacher_top1 >= plain_top1 + margin:
        return None
    return (f"Warning: the teacher ({100 * teacher_top1:.2f}%) is within {100 * margin:.0f} points of the plain "
            f"students ({100 * plain_top1:.2f}%): its labels add little. Train it longer or on more images "
            "(--min-teacher-steps, --teacher-train-size), or reinforce a smaller subset.")


def _temperature(results: dict[str, Any]) -> str:
    """``, T = 0.71`` for a calibrated teacher (:mod:`hf_dr.models.teacher_quality`), ``, uncalibrated`` where the
    calibration split could not fit one."""
    calibration = results.get("calibration")
    if not calibration:
        return ""
    return ", uncalibrated" if calibration.get("skipped") else f", T = {calibration['temperature']:.2f}"


def _count(rows: int) -> str:
    return f"{rows / 1000:.0f}k" if rows >= 10_000 else f"{rows:,}"


def format_codec_table(results: dict[str, Any]) -> str:
    """One row per record codec (:mod:`hf_dr.data.codec`): its bytes, and its students' top-1, NLL and ECE (mean +-
    std over seeds), the differences to the first codec's students beside them."""
    summary, runs = results["summary"], results["runs"]
    arm_of = {r["codec"]: r["arm"] for r in runs if "codec" in r}
    lines = ["| Codec | B / reinforcement | Top-1 (%) | Δ top-1 | NLL | ECE (%) | Δ ECE |",
             "|---|---|---|---|---|---|---|"]
    first = None
    for codec, cost in results["codecs"].items():
        s = summary[arm_of[codec]]
        first = first or s
        lines.append(
            f"| `{codec}` | {cost['bytes_per_reinforcement']:.1f} | {100 * s['top1_mean']:.2f} ± "
            f"{100 * s['top1_std']:.2f} | {100 * (s['top1_mean'] - first['top1_mean']):+.2f} | {s['nll_mean']:.3f} | "
            f"{100 * s['ece_mean']:.2f} ± {100 * s['ece_std']:.2f} | "
            f"{100 * (s['ece_mean'] - first['ece_mean']):+.2f} |")
    return "\n".join(lines)


def plot_results(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Accuracy (mean +- std over seeds) against training time per run, and ECE, per arm; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    arms = [a for a in ARMS if a in summary]
    colors = {"plain": "#7f7f7f", "reinforced": "#d62728", "online_kd": "#1f77b4"}
    labels = {"plain": "plain", "reinforced": "reinforced", "online_kd": "online KD"}
    fig, (ax_acc, ax_ece) = plt.subplots(1, 2, figsize=(10, 4))
    for arm in arms:
        s = summary[arm]
        runs = [r for r in results["runs"] if r["arm"] == arm]
        ax_acc.scatter([r["wall_time"] for r in runs], [100 * r["top1"] for r in runs], color=colors[arm], alpha=0.35)
        ax_acc.errorbar(s["wall_time_mean"], 100 * s["top1_mean"], yerr=100 * s["top1_std"], fmt="o", ms=9,
                        capsize=4, color=colors[arm], label=f"{labels[arm]} ({s['runs']} seeds)")
    ens = results["ensemble"]
    ax_acc.axhline(100 * ens["top1"], ls="--", color="black", lw=1,
                   label=f"teacher ensemble ({100 * ens['top1']:.1f}%)")
    ax_acc.set_xlabel("student training time per run (s)")
    ax_acc.set_ylabel("test top-1 (%)")
    ax_acc.set_title(f"{results['config']['student_arch']}, {summary[arms[0]]['steps']} iterations each")
    ax_acc.legend(fontsize=8, loc="lower right")
    x = np.arange(len(arms))
    ax_ece.bar(x, [100 * summary[a]["ece_mean"] for a in arms], yerr=[100 * summary[a]["ece_std"] for a in arms],
               color=[colors[a] for a in arms], capsize=4)
    ax_ece.set_xticks(x, [labels[a] for a in arms])
    ax_ece.set_ylabel("expected calibration error (%, 15 bins)")
    rein = results["reinforcement"]
    ax_ece.set_title(f"one-time: teachers {ens['train_seconds']:.0f} s, reinforcement {rein['seconds']:.0f} s")
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """``fig`` as a PNG at ``path``, written atomically, then closed (the demo's and the study's plots)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    saved = Path(write_atomic(path, lambda temporary: fig.savefig(temporary, dpi=110, format="png")))
    plt.close(fig)
    return saved
