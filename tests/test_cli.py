"""One command-line vocabulary: every `hf-dr` subcommand and every script spells a concept with the flag of
:data:`hf_dr.cli.FLAGS`, old spellings still parse (hidden) to the same destination, every --help shows the
defaults, `hf-dr --version` works, and `hf-dr --help` / `hf-dr CMD --help` import no heavy library."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hf_dr
import hf_dr.cli
from hf_dr.cli import COMMANDS, FLAGS, build_parser, main
from hf_dr.cli._options import HelpFormatter
from tests.utils_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("train", "train_trainer")  # reinforce.py and finetune_teacher.py run the subcommand's parser
HEAVY = ("torch", "datasets", "timm", "transformers")
# spellings that must never show in --help again (they still parse where they were used)
RETIRED = {"--source", "--size", "--threads", "--output", "--name", "--model", "--reinforcements",
           "--source-revision", "--samples"}


def _script(name: str):
    return load_script(name)


@pytest.fixture(scope="module")
def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser and every script's parser, by name."""
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = dict(subparsers.choices)
    found.update({f"scripts/{name}.py": _script(name).build_parser() for name in SCRIPTS})
    return found


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS
            and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


HELPER_MODULES = {"training_scripts"}  # what scripts/train*.py share: flags and preparation, not a subcommand


def test_the_command_table_lists_every_module_with_its_help():
    modules = {name for _, name, _ in pkgutil.iter_modules(hf_dr.cli.__path__)
               if not name.startswith("_") and name not in HELPER_MODULES}
    assert {path.rsplit(".", 1)[1] for path, _ in COMMANDS.values()} == modules
    for name, (path, help_text) in COMMANDS.items():
        module = importlib.import_module(path)
        assert module.HELP == help_text, name
        assert name == path.rsplit(".", 1)[1].replace("_", "-")


def test_one_flag_per_concept_everywhere(parsers):
    concept_of = {flag: concept for concept, flag in FLAGS.items()}
    seen = set()
    for name, parser in parsers.items():
        for action in _visible(parser):
            for option in action.option_strings:
                assert option not in RETIRED, f"{name}: {option} is an old spelling; it should be hidden"
                assert "_" not in option, f"{name}: {option}: flags are dashed"
                if option in concept_of:
                    assert action.dest == concept_of[option], f"{name}: {option} means {action.dest!r} here"
            if action.dest in FLAGS:
                assert FLAGS[action.dest] in action.option_strings, f"{name}: {action.dest} is not spelled right"
                seen.add(action.dest)
    assert seen == set(FLAGS)  # the table holds no concept that nothing uses


def test_the_concepts_the_review_found_split_are_now_shared(parsers):
    def has(name: str, flag: str) -> bool:
        return any(flag in a.option_strings for a in _visible(parsers[name]))

    for name in ("reinforce", "finetune-teacher", "eval", "push", "verify", "show", "scripts/train.py"):
        assert has(name, "--dataset"), name
    for name in ("push", "verify", "show", "scripts/train.py", "scripts/train_trainer.py"):
        assert has(name, "--run-dir"), name
    for name in ("reinforce", "finetune-teacher", "eval", "verify", "show", "demo", "scripts/train.py",
                 "scripts/train_trainer.py"):
        assert has(name, "--num-threads"), name
    assert has("verify", "--teacher-spec") and has("show", "--output-file") and has("eval", "--output-file")
    assert all(has(name, "--image-size") for name in ("eval", "show", "finetune-teacher", "scripts/train.py"))


R, PNG, C = ["--run-dir", "r"], ["-o", "g.png"], ["--checkpoint", "c", "--dataset", "d"]
# (command, old spelling, canonical spelling, destination): both command lines give the same value there
OLD_SPELLINGS = [
    ("verify", ["runs/r"], ["--run-dir", "runs/r"], "run_dir"),
    ("verify", [*R, "--source", "d"], [*R, "--dataset", "d"], "dataset"),
    ("verify", [*R, "--samples", "5"], [*R, "--num-pairs", "5"], "num_pairs"),
    ("show", ["runs/r", *PNG], ["--run-dir", "runs/r", *PNG], "run_dir"),
    ("show", [*R, *PNG, "--source", "d"], [*R, *PNG, "--dataset", "d"], "dataset"),
    ("show", [*R, *PNG, "--size", "48"], [*R, *PNG, "--image-size", "48"], "image_size"),
    ("show", [*R, "--output", "x.png"], [*R, "--output-file", "x.png"], "output_file"),
    ("push", ["runs/r", "o/n"], ["--run-dir", "runs/r", "o/n"], "run_dir"),
    ("push", [*R, "o/n", "--source-revision", "v1"], [*R, "o/n", "--revision", "v1"], "revision"),
    ("eval", [*C, "--model", "resnet18"], [*C, "--arch", "resnet18"], "arch"),
    ("eval", [*C, "--size", "32"], [*C, "--image-size", "32"], "image_size"),
    ("eval", [*C, "--output", "m.json"], [*C, "--output-file", "m.json"], "output_file"),
    ("reinforce", ["--name", "c"], ["--dataset-config", "c"], "dataset_config"),
    ("reinforce", ["--output", "o"], ["--output-dir", "o"], "output_dir"),
    ("finetune-teacher", ["--name", "c"], ["--dataset-config", "c"], "dataset_config"),
    ("finetune-teacher", ["--output", "o"], ["--output-dir", "o"], "output_dir"),
]


@pytest.mark.parametrize(("command", "old", "new", "dest"), OLD_SPELLINGS)
def test_old_spellings_parse_to_the_same_destination(command, old, new, dest):
    parser = build_parser(command)
    old_args, new_args = parser.parse_args([command, *old]), parser.parse_args([command, *new])
    assert getattr(old_args, dest) == getattr(new_args, dest) not in (None, [])
    assert vars(old_args) == vars(new_args)


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse_old_spellings_to_the_same_fields(name):
    parser = _script(name).build_parser()
    base = ["--dataset", "d", "--output-dir", "o"]
    old = parser.parse(["--dataset", "d", "--model", "a", "--size", "32", "--reinforcements", "r", "--threads", "1",
                        "--output_dir", "o"])
    new = parser.parse([*base, "--arch", "a", "--image-size", "32", "--run-dir", "r", "--num-threads", "1"])
    assert old == new
    data, model, run = old[0], old[1], old[-1]
    assert (model.arch, model.image_size, data.run_dir, run.num_threads, run.output_dir) == ("a", 32, "r", 1, "o")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"hf-dr {hf_dr.__version__}\n"


def test_every_help_shows_the_defaults(parsers, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside "(default: ...)"
    for name, parser in parsers.items():
        assert issubclass(parser.formatter_class, HelpFormatter), name
        for action in _visible(parser):
            formatter = parser._get_formatter()
            formatter.add_argument(action)
            text = " ".join(formatter.format_help().split())
            if action.required or action.nargs == 0:
                continue
            said = any(word in (action.help or "").lower() for word in ("default", "required"))
            if not said:  # a help that does not say the default itself gets it appended
                assert f"(default: {action.default})" in text, f"{name}: {text}"
            if not name.startswith("scripts/"):  # a subcommand's None default says what happens instead
                assert "(default: None)" not in text, f"{name}: {text}"


def test_top_level_help_lists_every_command_and_the_vocabulary(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS) and "--run-dir" in out and "--version" in out


def test_help_imports_no_heavy_library():
    """`hf-dr --help` and `hf-dr CMD --help` load only the command's module (a fresh interpreter)."""
    code = (
        "import contextlib, io, json, sys\n"
        "from hf_dr.cli import COMMANDS, main\n"
        "loaded = {}\n"
        f"for argv in [['--help'], *[[name, '--help'] for name in COMMANDS]]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        f"    loaded[' '.join(argv)] = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert len(loaded) == len(COMMANDS) + 1 and not any(loaded.values()), loaded


def test_only_the_command_being_run_is_imported():
    code = ("import sys\nfrom hf_dr.cli import main\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['verify', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('hf_dr.cli.')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.strip() == "['hf_dr.cli._boundary', 'hf_dr.cli._options', 'hf_dr.cli.verify']", result.stderr


@pytest.mark.parametrize("name", ["reinforce", "finetune_teacher"])
def test_the_multi_process_scripts_take_the_subcommand_flags(name, capsys):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / f"{name}.py"), "--help"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    with pytest.raises(SystemExit):
        main([name.replace("_", "-"), "--help"])
    assert result.returncode == 0 and result.stdout == capsys.readouterr().out


def test_num_threads_sets_torch_threads(monkeypatch, tmp_path, capsys):
    import torch

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    assert main(["verify", "--run-dir", str(tmp_path / "none"), "--num-threads", "3"]) == 1
    assert calls == [3] and "not a reinforce output folder" in capsys.readouterr().err


def test_a_missing_run_dir_names_the_flag(capsys):
    assert main(["verify"]) == 1
    assert "pass --run-dir DIR" in capsys.readouterr().err


def test_log_lines_carry_a_timestamp_level_and_logger():
    code = ("import logging\nfrom hf_dr.cli._options import configure_logging\nconfigure_logging()\n"
            "logging.getLogger('hf_dr.demo.run').info('stage 1/3')\nlogging.getLogger('timm').info('quiet')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO hf_dr\.demo\.run: stage 1/3\n", result.stderr)


@pytest.mark.parametrize(("dest", "value"), [("seed", "-1"), ("seeds", "-2"), ("num_pairs", "0"), ("index", "-1"),
                                             ("image_size", "0"), ("std", "0"), ("batch_size", "0"),
                                             ("num_samples", "0"), ("in_chans", "2"), ("num_threads", "0")])
def test_counts_sizes_seeds_channels_and_std_are_checked_in_every_command(parsers, dest, value):
    """Issue #21: each command and script that takes the flag refuses the value as it parses it, naming the flag
    (a usage error: one line at the boundary), instead of failing deep inside numpy or torch, or training on NaN."""
    from hf_dr.errors import InvalidConfigError

    checked = []
    for name, parser in parsers.items():
        for action in parser._actions:
            if action.dest == dest and action.option_strings:
                flag = action.option_strings[0]
                with pytest.raises(InvalidConfigError, match=f"argument {re.escape(flag)}.*{re.escape(value)}"):
                    parser.parse_known_args([flag, value])
                checked.append(name)
    assert checked, f"no command takes {dest}"
