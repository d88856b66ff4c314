"""Issue #21: every user mistake at `hf-dr` or a script is ONE line on stderr naming the input (and the fix), exit
status 1 and no traceback; `HF_DR_DEBUG=1` or `--debug` shows the traceback, and a bug keeps it.

One table, one row per mistake that used to end in a traceback (or in nonsense), run on small real data: the bundled
"digits" (grayscale), reinforced once by an RGB teacher and once by a one-channel teacher.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch

from hf_dr.cli import main
from hf_dr.cli._boundary import run_main
from hf_dr.errors import InvalidConfigError
from tests.utils_scripts import load_script

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) ")  # progress, not the error


def _script(name: str):
    return load_script(name)


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    """The digits on disk, an RGB run and an "L" run of them, a teacher, a spec with a typo, a file, a read-only
    folder."""
    from hf_dr.data.sources import load_source
    from hf_dr.generate.run import reinforce
    from hf_dr.models.students import create_model
    from tests.utils_teacher import save_teacher

    root = tmp_path_factory.mktemp("errors")
    digits = load_source("digits").select(range(16))
    digits.save_to_disk(str(root / "digits"))
    rgb_teacher = save_teacher(str(root / "teachers"), seed=0)
    gray_weights = str(root / "teachers" / "gray.safetensors")
    safetensors.torch.save_file(create_model("hf_dr_cnn_tiny", 10, in_chans=1).state_dict(), gray_weights)
    gray_teacher = {"arch": "hf_dr_cnn_tiny", "weights": gray_weights, "input_size": [1, 28, 28]}
    for name, teacher in (("rgb", rgb_teacher), ("gray", gray_teacher)):
        reinforce(digits, [teacher], "rrc", num_samples=2, topk=3, seed=0, output_dir=str(root / name),
                  key_column="key", num_workers=0, progress=False)
    (root / "bad_spec.json").write_text('[{"arch": "test_resnet", "weights": "w.safetensors",}]')
    (root / "a_file").write_text("not a folder")
    (root / "readonly").mkdir()
    (root / "readonly").chmod(0o555)
    return {"tmp": str(root), "digits": str(root / "digits"), "rgb": str(root / "rgb"), "gray": str(root / "gray"),
            "teacher": f"{rgb_teacher['arch']}={rgb_teacher['weights']}", "bad_spec": str(root / "bad_spec.json"),
            "file": str(root / "a_file"), "readonly": str(root / "readonly")}


TRAIN = "--arch hf_dr_cnn_tiny --image-size 16 --epochs 1 --batch-size 8 --no-progress --output-dir {tmp}/student"
REINFORCE = "reinforce --dataset {digits} --teacher {teacher} --output-dir {tmp}/run"
SHOW = "show --run-dir {rgb} --dataset {digits}"
# (id, program, arguments, what the one line must name); program "hf-dr" runs hf_dr.cli.main, "train.py" the script
ROWS = [
    ("missing-dataset", "hf-dr", "reinforce --dataset {tmp}/no_such_folder --teacher {teacher} --output-dir {tmp}/r",
     ["no_such_folder", "--dataset"]),
    ("missing-dataset-script", "train.py", "--dataset {tmp}/no_such_folder " + TRAIN, ["no_such_folder", "--dataset"]),
    ("teacher-spec-json-typo", "hf-dr", "reinforce --dataset {digits} --teacher-spec {bad_spec} --output-dir {tmp}/r",
     ["bad_spec.json", "not valid JSON", "line 1"]),
    ("verify-num-pairs-0", "hf-dr", "verify --run-dir {rgb} --dataset {digits} --num-pairs 0", ["--num-pairs", "'0'"]),
    ("verify-num-pairs-negative", "hf-dr", "verify --run-dir {rgb} --dataset {digits} --num-pairs -3",
     ["--num-pairs", "'-3'", ">= 1"]),
    ("show-index-out-of-range", "hf-dr", SHOW + " --index 16 -o {tmp}/grid.png", ["--index 16", "between 0 and 15"]),
    ("show-index-negative", "hf-dr", SHOW + " --index -1 -o {tmp}/grid.png", ["--index", "'-1'"]),
    ("unknown-policy", "hf-dr", REINFORCE + " --policy rrc+typo", ["unknown policy 'rrc+typo'", "rrc+ra_re"]),
    ("negative-seed", "hf-dr", REINFORCE + " --seed -3", ["--seed", "'-3'", ">= 0"]),
    ("non-integer-seed", "train.py", "--dataset {digits} --seed 1.5 " + TRAIN, ["--seed", "'1.5'"]),
    ("zero-size", "train.py", "--dataset {digits} " + TRAIN + " --image-size 0", ["--image-size", "'0'"]),
    ("two-channels", "train.py", "--dataset {digits} --in-chans 2 " + TRAIN, ["--in-chans", "1 (grayscale", "3 (RGB"]),
    ("zero-std", "train.py", "--dataset {digits} --std 0 " + TRAIN, ["--std", "'0'", "> 0"]),
    ("unknown-column", "hf-dr", REINFORCE + " --label-column target", ["'target'", "--label-column"]),
    ("unknown-column-script", "train.py", "--dataset {digits} --image-column img " + TRAIN, ["'img'", "image"]),
    ("unknown-flag", "train.py", "--dataset {digits} --bogus 3 " + TRAIN, ["--bogus", "train.py --help"]),
    ("unknown-architecture", "train.py", "--dataset {digits} " + TRAIN.replace("hf_dr_cnn_tiny", "resnt18"),
     ["'resnt18'", "resnet18"]),
    ("1-channel-student-on-rgb-run", "train.py", "--dataset {digits} --run-dir {rgb} --in-chans 1 " + TRAIN,
     ["1 input channel", "'RGB'", "--in-chans 3"]),
    ("3-channel-student-on-L-run", "train.py", "--dataset {digits} --run-dir {gray} --in-chans 3 " + TRAIN,
     ["3 input channels", "'L'", "--in-chans 1"]),
    ("3-channel-student-on-L-run-trainer", "train_trainer.py",
     "--dataset {digits} --run-dir {gray} --in-chans 3 --timm-wrapper " + TRAIN, ["'L'", "--in-chans 1"]),
    ("init-from-not-a-checkpoint", "train.py", "--dataset {digits} --init-from {bad_spec} " + TRAIN,
     ["--init-from", "bad_spec.json", "safetensors"]),
    ("fewer-classes-than-the-labels", "train.py", "--dataset {digits} --num-classes 3 " + TRAIN,
     ["predicts 3 classes", "has 10"]),
    ("fewer-classes-than-the-soft-labels", "train_trainer.py", "--dataset {digits} --run-dir {rgb} --num-classes 3 "
     + TRAIN, ["predicts 3 classes", "has 10"]),
    ("output-folder-is-a-file", "hf-dr", SHOW + " -o {file}/grid.png", ["a_file"]),
    ("output-under-a-file-script", "train.py", "--dataset {digits} " + TRAIN.replace("{tmp}/student", "{file}/out"),
     ["a_file"]),
    ("read-only-output-folder", "hf-dr", SHOW + " -o {readonly}/grid.png", ["readonly"]),  # skipped as root
    ("missing-checkpoint", "hf-dr", "eval --checkpoint {tmp}/model.safetensors --dataset {digits}",
     ["model.safetensors", "--checkpoint"]),
    ("missing-command", "hf-dr", "", ["COMMAND", "hf-dr --help"]),
]


def _run(program: str, argv: list[str]) -> int:
    if program == "hf-dr":
        return main(argv)
    return run_main(_script(program.removesuffix(".py")).main, argv, prog=program)


def _the_error_line(stderr: str) -> str:
    """The one line of ``stderr`` that is not a log record; fails unless there is exactly one."""
    lines = [line for line in stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert len(lines) == 1, stderr
    return lines[0]


ROOT_WRITES_ANYWHERE = pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")


@pytest.mark.parametrize(("program", "arguments", "names"), [
    pytest.param(*row[1:], id=row[0], marks=ROOT_WRITES_ANYWHERE if "read-only" in row[0] else ()) for row in ROWS])
def test_a_mistake_is_one_line_naming_the_input(paths, program, arguments, names, capsys):
    argv = [word.format(**paths) for word in arguments.split()]
    code = _run(program, argv)
    err = capsys.readouterr().err
    line = _the_error_line(err)
    command = f"hf-dr {argv[0]}" if program == "hf-dr" and argv else program
    assert code == 1 and "Traceback" not in err
    assert line.startswith(f"{command}: error: "), line
    for name in names:
        assert name in line, line


def test_the_script_itself_prints_one_line_and_exits_1(paths):
    """`python scripts/train.py` (its __main__) with a three-channel student on a one-channel run, before any
    training: one line naming both, no traceback."""
    argv = ["--dataset", paths["digits"], "--run-dir", paths["gray"], "--in-chans", "3",
            *TRAIN.format(**paths).split()]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *argv], capture_output=True,
                            text=True, cwd=ROOT, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = _the_error_line(result.stderr)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert line.startswith("train.py: error: the student reads 3 input channels") and "--in-chans 1" in line
    assert not (Path(paths["tmp"]) / "student" / "model.safetensors").exists()


def test_hf_dr_debug_shows_the_traceback(paths):
    code = "import sys\nfrom hf_dr.cli import main\nsys.exit(main())\n"
    argv = ["verify", "--run-dir", paths["rgb"], "--num-pairs", "0"]
    quiet = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120)
    loud = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "HF_DR_DEBUG": "1"})
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr
    assert "InvalidConfigError: argument --num-pairs" in loud.stderr


def test_debug_flag_raises_the_error(paths, capsys):
    with pytest.raises(InvalidConfigError, match="--index 16 is out of range"):
        main([*SHOW.format(**paths).split(), "--index", "16", "-o", f"{paths['tmp']}/grid.png", "--debug"])


def test_a_bug_keeps_its_traceback():
    """A plain TypeError is not the user's mistake: hiding it would hide the bug."""
    def buggy(argv: list[str]) -> int:
        return len(None)

    with pytest.raises(TypeError):
        run_main(buggy, [], prog="hf-dr x")


def test_scripts_take_the_channels_from_the_run(paths):
    """Without --in-chans the student reads what the run recorded (hf_dr_cnn_tiny alone reads one channel)."""
    from hf_dr.models.checkpoints import load_classifier

    out = Path(paths["tmp"]) / "rgb-student"
    argv = ["--dataset", paths["digits"], "--run-dir", paths["rgb"],
            *TRAIN.format(**paths).replace(f"{paths['tmp']}/student", str(out)).split()]
    result = _script("train").main(argv)
    assert result["steps"] == 2
    assert load_classifier(out / "model.safetensors")[1]["input_size"][0] == 3


def test_training_data_refuses_a_student_of_other_channels_than_the_run(paths):
    """The library path under both scripts: a one-channel DataConfig on an RGB run is refused before training (it
    used to fail at the first forward, inside the first convolution)."""
    import datasets

    from hf_dr.train.inputs import DataConfig, training_data

    images = datasets.load_from_disk(paths["digits"])
    with pytest.raises(InvalidConfigError, match=r"reads 1 input channel but the run .*rgb holds images of mode 'RGB"):
        training_data(images, DataConfig((16, 16), (0.5,), (0.5,), in_chans=1), paths["rgb"])
    train, _ = training_data(images, DataConfig((16, 16), (0.5,), (0.5,), in_chans=1), paths["gray"])
    assert train[0]["pixel_values"].shape == (1, 16, 16)
