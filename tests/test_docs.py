"""Every ``python`` and ``bash`` code block of README.md and docs/*.md runs (against the local Hub server and data
made here), or says in the Markdown why it cannot run here, so that no snippet rots.

A block is run as written, in a fresh working directory. What it needs is declared in an HTML comment right before
its fence (invisible on the rendered page)::

    <!-- doctest: skip (the reason it cannot run here) -->

    <!-- doctest
    setup: cifar100_on_hub, teacher_spec
    replace: --num-samples 800 => --num-samples 4
    -->

``setup`` names functions of :data:`SETUPS` (below) that put files in the working directory or repos on the local
Hub; each ``replace`` swaps in a tiny setting (its left side must occur in the block). Python blocks are executed
in a fresh namespace. Bash blocks run line by line (``\\`` continues a line, ``#`` starts a comment): ``hf-dr ...``
through :func:`hf_dr.cli.main` and ``python scripts/X.py ...`` as ``__main__`` of the repo's script, both in this
process; any other command fails the block (mark it skipped instead). Blocks of other languages (bibtex) are
listed as skipped. ``test_every_block_is_accounted_for`` prints every block with its status for the CI log.
"""

from __future__ import annotations

import json
import re
import runpy
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pytest
from huggingface_hub import HfApi

from tests.data_utils import digit_images
from tests.hub_server import HubServer
from tests.utils_hub import server_stays_consistent  # noqa: F401  (autouse fixture)
from tests.utils_teacher import save_teacher

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = ("python", "bash")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
DIRECTIVE = re.compile(r"<!--\s*doctest\b:?(.*)-->\Z", re.DOTALL)
CIFAR100, CIFAR100_PLUS, IMAGENET_PLUS = "uoft-cs/cifar100", "org/cifar100-plus", "org/imagenet-plus"
REPOS = (CIFAR100, CIFAR100_PLUS, IMAGENET_PLUS)
GRAY_SETUPS = {"cifar100_on_hub", "teacher_spec", "cifar100_run", "cifar100_pushed", "pretrain_finetune_runs"}
NUM_CLASSES, TRAIN_ROWS, TEST_ROWS, NUM_SAMPLES, TOPK = 100, 48, 16, 4, 10


# -- the blocks -----------------------------------------------------------------------------------------------------
@dataclass
class Block:
    """One fenced code block and the directive before it."""

    path: Path
    line: int
    language: str
    code: str
    skip: str | None = None
    setup: list[str] = field(default_factory=list)
    replace: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} ({self.language})"

    def runnable_code(self) -> str:
        code = self.code
        for old, new in self.replace:
            assert old in code, f"{self.name}: replace {old!r}: not in the block"
            code = code.replace(old, new)
        return code


def parse_directive(text: str, where: str) -> dict:
    """``skip (reason)`` / ``skip: reason``, ``setup: a, b`` and ``replace: old => new`` lines of a directive."""
    found: dict = {"skip": None, "setup": [], "replace": []}
    if text.strip().startswith("skip"):  # the rest, over any number of lines, is the reason
        found["skip"] = " ".join(text.strip()[4:].split()).strip(":() ")
        assert found["skip"], f"{where}: a skipped block says why"
        return found
    for line in filter(None, (line.strip() for line in text.strip().splitlines())):
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "setup":
            found["setup"] += [name.strip() for name in value.split(",") if name.strip()]
        elif key == "replace":
            old, arrow, new = value.partition(" => ")
            assert arrow, f"{where}: write replace: OLD => NEW"
            found["replace"].append((old.strip(), new.strip()))
        else:
            raise AssertionError(f"{where}: unknown doctest directive {line!r}")
    return found


def collect_blocks(paths: list[Path] = DOCUMENTS) -> list[Block]:
    """The fenced blocks of ``paths`` in order, each with the directive right before its fence (blocks of other
    languages than python and bash, e.g. bibtex, are listed as skipped)."""
    blocks = []
    for path in paths:
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            block = Block(path, line, match.group(1) or "text", match.group(2))
            if block.language not in LANGUAGES:  # listed with the others, so that the count is every block
                block.skip = f"a {block.language} block: nothing to run"
                blocks.append(block)
                continue
            before = text[: match.start()].rstrip()
            directive = DIRECTIVE.match(before[before.rfind("<!--"):]) if before.endswith("-->") else None
            if directive:
                for name, value in parse_directive(directive.group(1), block.name).items():
                    setattr(block, name, value)
            blocks.append(block)
    return blocks


BLOCKS = collect_blocks()
RESULTS: dict[str, str] = {}


def test_directives_are_read():
    blocks = collect_blocks([ROOT / "README.md"])
    assert blocks[0].skip and "install" in blocks[0].skip
    assert {name for block in BLOCKS for name in block.setup} <= set(SETUPS)
    assert parse_directive("skip (needs 8 GPUs,\n  ImageNet)", "x")["skip"] == "needs 8 GPUs, ImageNet"
    assert parse_directive("setup: a, b\nreplace: --n 8 => --n 1", "x") == {
        "skip": None, "setup": ["a", "b"], "replace": [("--n 8", "--n 1")]}


# -- what blocks need -----------------------------------------------------------------------------------------------
@dataclass
class World:
    """Session-wide material for the blocks: a cache folder and the setups already made in it."""

    cache: Path
    mode: str = "RGB"  # "L": the same material in grayscale, under the repo ids of :meth:`repo`
    made: dict[str, object] = field(default_factory=dict)

    def repo(self, name: str) -> str:
        """The Hub id this world uses for ``name`` (one of :data:`REPOS`): a namespace of its own in grayscale."""
        owner, _, rest = name.partition("/")
        return name if self.mode == "RGB" else f"{owner}-gray/{rest}"

    def images(self, count: int) -> tuple[list, list[int]]:
        images, labels = digit_images(count)
        return [image.convert(self.mode) for image in images], labels

    def ensure(self, name: str, cwd: Path) -> None:
        """Makes setup ``name`` (once per session; some also copy files into ``cwd`` every time)."""
        SETUPS[name](self, cwd)


SETUPS: dict[str, Callable[[World, Path], None]] = {}


def setup(function: Callable[[World, Path], None]) -> Callable[[World, Path], None]:
    SETUPS[function.__name__] = function
    return function


def _once(world: World, name: str, make: Callable[[], object]) -> object:
    if name not in world.made:
        world.made[name] = make()
    return world.made[name]


@setup
def cifar100_on_hub(world: World, cwd: Path) -> None:
    """A tiny ``uoft-cs/cifar100`` on the local Hub: digits as ``img`` with a 100-class ``fine_label``, no key
    column (like the real one), splits ``train`` and ``test``."""
    def make() -> str:
        images, labels = world.images(TRAIN_ROWS + TEST_ROWS)
        features = datasets.Features({"img": datasets.Image(),
                                      "fine_label": datasets.ClassLabel(names=[f"class-{i}" for i in range(100)])})
        rows = {"img": images, "fine_label": labels}
        full = datasets.Dataset.from_dict(rows, features=features)
        splits = datasets.DatasetDict({"train": full.select(range(TRAIN_ROWS)),
                                       "test": full.select(range(TRAIN_ROWS, TRAIN_ROWS + TEST_ROWS))})
        splits.push_to_hub(world.repo(CIFAR100))
        return HfApi().dataset_info(world.repo(CIFAR100)).sha

    _once(world, "cifar100_on_hub", make)


def _teachers(world: World, num_classes: int) -> list[dict]:
    return _once(world, f"teachers-{num_classes}", lambda: [
        save_teacher(str(world.cache / "teachers"), seed=seed, num_classes=num_classes,
                     in_chans=len(world.mode)) for seed in (0, 1)])


@setup
def teacher_spec(world: World, cwd: Path) -> None:
    """``teachers/teacher_spec.json``: two tiny 100-class timm teachers reading 32x32 views."""
    (cwd / "teachers").mkdir(exist_ok=True)
    (cwd / "teachers" / "teacher_spec.json").write_text(json.dumps(_teachers(world, NUM_CLASSES)))


def _run(world: World, dataset: datasets.Dataset, members: list[dict], name: str, **options) -> str:
    from hf_dr import reinforce

    return reinforce(dataset, members, "rrc+ra_re", num_samples=NUM_SAMPLES, topk=options.pop("topk", TOPK), seed=0,
                     output_dir=str(world.cache / name), batch_size=64, num_workers=0, progress=False, **options)


def _cifar100_run(world: World) -> str:
    def make() -> str:
        commit = world.made["cifar100_on_hub"]
        source = datasets.load_dataset(world.repo(CIFAR100), split="train", revision=commit)
        return _run(world, source, _teachers(world, NUM_CLASSES), "cifar100-plus", image_column="img",
                    label_column="fine_label", source={"id": world.repo(CIFAR100), "revision": commit,
                                                                      "split": "train"})

    cifar100_on_hub(world, world.cache)
    return _once(world, "cifar100_run", make)


@setup
def cifar100_run(world: World, cwd: Path) -> None:
    """``cifar100-plus/``: a finished run of the tiny ``uoft-cs/cifar100`` (``rrc+ra_re``, N=4, k=10)."""
    shutil.copytree(_cifar100_run(world), cwd / "cifar100-plus")


@setup
def cifar100_pushed(world: World, cwd: Path) -> None:
    """The run on the local Hub: ``org/cifar100-plus`` (self-contained) and, standing in for ImageNet+,
    ``org/imagenet-plus`` (metadata-only: its images stay in ``uoft-cs/cifar100``)."""
    from hf_dr import push_to_hub

    def make() -> None:
        run_dir = _cifar100_run(world)
        push_to_hub(run_dir, world.repo(CIFAR100_PLUS))
        push_to_hub(run_dir, world.repo(IMAGENET_PLUS), layout="metadata-only")

    _once(world, "cifar100_pushed", make)


@setup
def pretrain_finetune_runs(world: World, cwd: Path) -> None:
    """Datasets ``X`` (10 classes) and ``Y`` (5 classes, so fine-tuning gets a new head), saved with
    ``save_to_disk``, and their runs ``X+`` and ``Y+``."""
    def make() -> dict[str, str]:
        images, labels = world.images(TRAIN_ROWS)
        keys = [f"digit-{i:05d}" for i in range(TRAIN_ROWS)]
        folders = {}
        for name, num_classes in (("X", 10), ("Y", 5)):
            rows = [i for i, label in enumerate(labels) if label < num_classes]
            features = datasets.Features({"image": datasets.Image(), "key": datasets.Value("string"),
                                          "label": datasets.ClassLabel(num_classes=num_classes)})
            columns = {"image": [images[i] for i in rows], "key": [keys[i] for i in rows],
                       "label": [labels[i] for i in rows]}
            dataset = datasets.Dataset.from_dict(columns, features=features)
            dataset.save_to_disk(str(world.cache / name))
            folders[name] = str(world.cache / name)
            members = _teachers(world, num_classes)[:1]
            folders[f"{name}+"] = _run(world, dataset, members, f"{name}+", key_column="key", topk=3)
        return folders

    for name, folder in _once(world, "pretrain_finetune_runs", make).items():
        shutil.copytree(folder, cwd / name)


@setup
def demo_checkpoint(world: World, cwd: Path) -> None:
    """``runs/demo/students/reinforced-seed0.safetensors``: an untrained student saved the way ``hf-dr demo``
    saves it (the block reads Fashion-MNIST's test split from Debian's files, as the demo does)."""
    from hf_dr.models.checkpoints import checkpoint_model_metadata, save_checkpoint
    from hf_dr.models.students import create_model

    model = create_model("hf_dr_cnn_fc", 10, in_chans=1)
    save_checkpoint(model, cwd / "runs/demo/students/reinforced-seed0.safetensors",
                    checkpoint_model_metadata(model, "hf_dr_cnn_fc"))


@pytest.fixture(scope="module")
def world(hub: HubServer, tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("docs-world"))


@pytest.fixture(scope="module")
def gray_world(hub: HubServer, tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("docs-gray-world"), mode="L")


# -- running them ---------------------------------------------------------------------------------------------------
def bash_commands(code: str) -> list[list[str]]:
    r"""The commands of a bash block: ``\\``-continued lines joined, comments and blank lines dropped.

    Example:
        >>> bash_commands("hf-dr verify --run-dir r \\\n  --num-pairs 2   # compare\n\n# note\n")
        [['hf-dr', 'verify', '--run-dir', 'r', '--num-pairs', '2']]
    """
    return [words for line in code.replace("\\\n", " ").splitlines() if (words := shlex.split(line, comments=True))]


def run_bash(code: str, name: str) -> None:
    from hf_dr.cli import main

    for words in bash_commands(code):
        if words[0] == "hf-dr":
            assert main(words[1:]) == 0, f"{name}: {shlex.join(words)} failed"
        elif words[0] in ("python", "python3") and words[1].startswith("scripts/") and words[1].endswith(".py"):
            argv = sys.argv
            sys.argv = words[1:]
            try:
                runpy.run_path(str(ROOT / words[1]), run_name="__main__")
            finally:
                sys.argv = argv
        else:
            raise AssertionError(f"{name}: cannot run {shlex.join(words)!r} here: mark the block skipped, saying why")


def run_block(block: Block, world: World, cwd: Path) -> None:
    """Makes the block's setups in ``world`` and runs it in ``cwd``, with the world's repo ids."""
    for name in block.setup:
        world.ensure(name, cwd)
    code = block.runnable_code()
    for name in REPOS:
        code = code.replace(name, world.repo(name))
    if block.language == "python":
        exec(compile(code, block.name, "exec"), {"__name__": "__docs__"})
    else:
        run_bash(code, block.name)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_block_runs(block: Block, world: World, tmp_path, monkeypatch):
    if block.skip:
        RESULTS[block.name] = f"skipped: {block.skip}"
        pytest.skip(block.skip)
    monkeypatch.chdir(tmp_path)
    run_block(block, world, tmp_path)
    RESULTS[block.name] = "ran"


GRAY_BLOCKS = [block for block in BLOCKS if not block.skip and set(block.setup) & GRAY_SETUPS]


@pytest.mark.parametrize("block", GRAY_BLOCKS, ids=[block.name for block in GRAY_BLOCKS])
def test_block_runs_on_grayscale_data(block: Block, gray_world: World, tmp_path, monkeypatch):
    """Issue 24: every documented recipe, as written, on a grayscale copy of its data (digits in mode "L", teachers
    reading one channel): the students are built with the data's channels, nothing fails deep in a convolution."""
    monkeypatch.chdir(tmp_path)
    run_block(block, gray_world, tmp_path)


def test_the_recipes_are_run_on_grayscale_data():
    assert len(GRAY_BLOCKS) >= 8, [block.name for block in GRAY_BLOCKS]


def test_every_block_is_accounted_for(capsys):
    """Prints every block with its status (visible in CI logs); every block ran or is skipped with its reason."""
    if not RESULTS:
        pytest.skip("run with the block tests (tests/test_docs.py as a whole)")
    statuses = {block.name: RESULTS.get(block.name, "FAILED or not run") for block in BLOCKS}
    with capsys.disabled():
        print(f"\ncode blocks of README.md and docs/*.md ({len(statuses)}; the card's: tests/hub/test_card.py):")
        for name, status in statuses.items():
            print(f"  {name}: {status}")
    assert all(status == "ran" or status.startswith("skipped: ") for status in statuses.values()), statuses
    assert sum(status == "ran" for status in statuses.values()) >= 6
