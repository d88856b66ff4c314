"""The builder of a reinforced dataset: :class:`Builder`, the type every module of the repository's ``builders/``
folder instantiates once (``BUILDER = Builder(...)``).

A builder is data only: where the source rows are (Hub id, revision, split, columns, classes), which teacher labels
them (pinned timm tags, or the base checkpoint to fine-tune with ``hf-dr finetune-teacher``), the augmentation policy,
N, k and seed, and how the result is published (layout, license, the source's citation, what differs from the paper
and why). ``hf-dr builders`` lists them; ``hf-dr reinforce --builder NAME`` runs one, any explicit flag overriding the
recipe's value.

Example:
    >>> from hf_dr.builders import get_builder
    >>> builder = get_builder("imagenet_plus_small")
    >>> builder.num_samples, builder.topk, builder.layout
    (100, 5, 'metadata-only')
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from hf_dr.errors import InvalidConfigError, MissingTeacherError
from hf_dr.files import to_json_value
from hf_dr.generate.settings import ReinforceSettings
from hf_dr.models.teacher import MemberSpec, load_teacher_spec

SELF_CONTAINED = "self-contained"  # rows carry the images (redistributable data)
METADATA_ONLY = "metadata-only"  # rows carry keys and reinforcements; the images stay in the source repo
LAYOUTS = (SELF_CONTAINED, METADATA_ONLY)  # the push layouts of hf_dr.hub.push
_DEFAULTS = ReinforceSettings()  # a recipe's policy, N, k and seed default to reinforce()'s


@dataclass(frozen=True)
class Builder:
    """The recipe of one reinforced dataset (see the module docstring).

    Args:
        name (`str`): registry name, e.g. ``"cifar100_plus"`` (``hf-dr reinforce --builder cifar100_plus``).
        pretty_name (`str`): the published dataset's title, e.g. ``"CIFAR-100+"``.
        description (`str`): one line for ``hf-dr builders``.
        dataset_id (`str`): the source's Hub dataset id.
        split (`str`): the split that is reinforced.
        image_column, label_column (`str`): the source's column names.
        num_classes (`int`): the label column's class count (the teacher's head size).
        revision (`str`, *optional*): the source revision (branch, tag or commit); the Hub's default branch if None.
        config_name (`str`, *optional*): the source's configuration name.
        eval_split (`str`, *optional*): held-out split for evaluating fine-tuned teachers.
        key_column (`str`, *optional*): a unique key column; None keys rows by ``key_from``.
        key_from (`str`, *optional*): without a key column, ``"path"`` keys rows by the image file's name as
            ``datasets`` stores it (:func:`hf_dr.data.keys.path_key`); None or ``"content"`` by a hash of the bytes.
        class_names (`tuple[str, ...]`, *optional*): the label names, in label order.
        teacher (`tuple[str, ...]`): pinned timm ``arch.tag`` names of the ensemble; empty when the teacher must be
            fine-tuned on the source first (see ``teacher_base``).
        teacher_base (`str`, *optional*): the ImageNet checkpoint that ``hf-dr finetune-teacher`` fine-tunes.
        teacher_seeds (`tuple[int, ...]`): one fine-tuning seed per ensemble member.
        teacher_input_size (`int`, *optional*): resolution the fine-tuned teachers train and label at.
        teacher_epochs (`int`, *optional*): fine-tuning epochs of each member (``hf-dr finetune-teacher``'s default).
        policy (`str`, *optional*, defaults to ``"rrc+ra_re"``): augmentation policy name.
        num_samples, topk, seed (`int`, *optional*, defaults to 10, 10, 0): N, k and the run seed (the defaults of
            :class:`~hf_dr.generate.settings.ReinforceSettings`).
        layout (`str`, *optional*, defaults to ``"self-contained"``): push layout, or ``"metadata-only"`` for images
            that may not be redistributed.
        license (`str`, *optional*, defaults to ``"unknown"``): the card's Hub license id.
        source_citation (`str`, *optional*): BibTeX of the source dataset.
        notes (`tuple[str, ...]`): what differs from the paper's recipe and why (shown in the card).
    """

    name: str
    pretty_name: str
    description: str
    dataset_id: str
    split: str
    image_column: str
    label_column: str
    num_classes: int
    revision: str | None = None
    config_name: str | None = None
    eval_split: str | None = None
    key_column: str | None = None
    key_from: str | None = None
    class_names: tuple[str, ...] | None = None
    teacher: tuple[str, ...] = ()
    teacher_base: str | None = None
    teacher_seeds: tuple[int, ...] = ()
    teacher_input_size: int | None = None
    teacher_epochs: int | None = None
    policy: str = _DEFAULTS.policy
    num_samples: int = _DEFAULTS.num_samples
    topk: int = _DEFAULTS.topk
    seed: int = _DEFAULTS.seed
    layout: str = SELF_CONTAINED
    license: str = "unknown"
    source_citation: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("num_classes", "num_samples", "topk"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidConfigError(f"builder {self.name!r}: {name} should be a positive integer, but got "
                                         f"{getattr(self, name)!r} instead.")
        if self.topk > self.num_classes:
            raise InvalidConfigError(f"builder {self.name!r}: topk {self.topk} exceeds the {self.num_classes} classes")
        if self.layout not in LAYOUTS:
            raise InvalidConfigError(f"builder {self.name!r}: layout should be one of {list(LAYOUTS)}, but got "
                                     f"{self.layout!r} instead.")
        names = self.class_names
        if names is not None and (len(names) != self.num_classes or len(set(names)) != len(names)):
            raise InvalidConfigError(f"builder {self.name!r}: class_names should be {self.num_classes} distinct names "
                                     f"(one per class), but got {len(names)} ({len(set(names))} distinct)")
        if len(set(self.teacher)) != len(self.teacher):
            raise InvalidConfigError(f"builder {self.name!r}: teacher members repeat: {list(self.teacher)}")
        if not self.teacher and not (self.teacher_base and self.teacher_seeds):
            raise InvalidConfigError(f"builder {self.name!r}: give pinned teacher tags, or a teacher_base to "
                                     "fine-tune and its teacher_seeds")

    # -- teacher --------------------------------------------------------------------------------------------------
    @property
    def needs_finetuned_teacher(self) -> bool:
        """True when the teacher must be fine-tuned on the source first (``hf-dr finetune-teacher``)."""
        return not self.teacher

    def finetune_command(self, output_dir: str | None = None) -> str:
        """The command that fine-tunes this recipe's teacher ensemble.

        Example:
            >>> from hf_dr.builders import get_builder
            >>> get_builder("cifar100_plus").finetune_command()
            'hf-dr finetune-teacher --builder cifar100_plus --output-dir teachers/cifar100_plus'
        """
        return f"hf-dr finetune-teacher --builder {self.name} --output-dir {output_dir or self.default_teacher_dir}"

    @property
    def default_teacher_dir(self) -> str:
        return os.path.join("teachers", self.name)

    def teacher_members(self, teacher_spec: str | os.PathLike | None = None) -> list[MemberSpec]:
        """The ensemble: the members of ``teacher_spec`` (a file from ``hf-dr finetune-teacher``) if given, else the
        recipe's pinned timm tags. A recipe whose teacher must be fine-tuned raises :class:`MissingTeacherError`
        naming the command that makes the spec.

        Example:
            >>> from hf_dr.builders import get_builder
            >>> [m.arch for m in get_builder("imagenet_plus").teacher_members()][:1]
            ['resnext101_32x8d.fb_wsl_ig1b_ft_in1k']
        """
        if teacher_spec is not None:
            return load_teacher_spec(teacher_spec)
        if self.needs_finetuned_teacher:
            raise MissingTeacherError(
                f"builder {self.name!r} labels with {len(self.teacher_seeds)} x {self.teacher_base} fine-tuned on "
                f"{self.dataset_id}, which is not a published checkpoint. Fine-tune it first: "
                f"`{self.finetune_command()}`, then pass --teacher-spec "
                f"{os.path.join(self.default_teacher_dir, 'teacher_spec.json')} (or --teacher MEMBER for your own)."
            )
        return [MemberSpec.parse(name) for name in self.teacher]

    # -- reinforce and push ---------------------------------------------------------------------------------------
    def source(self) -> dict[str, Any]:
        """Provenance of the rows for :func:`hf_dr.reinforce` (``source=``): id, split, revision and this builder."""
        return {"id": self.dataset_id, "split": self.split, "revision": self.revision, "builder": self.name}

    def reinforce_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :func:`hf_dr.reinforce` this recipe fixes (all but the dataset and teacher).

        Example:
            >>> from hf_dr.builders import get_builder
            >>> get_builder("cifar100_plus").reinforce_arguments()["num_samples"]
            800
        """
        return {"policy": self.policy, "num_samples": self.num_samples, "topk": self.topk, "seed": self.seed,
                "image_column": self.image_column, "label_column": self.label_column,
                "key_column": self.key_column, "key_from": self.key_from, "source": self.source()}

    def card_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`hf_dr.push_to_hub` this recipe fixes: ``layout``, ``license``,
        ``pretty_name``."""
        return {"layout": self.layout, "license": self.license, "pretty_name": self.pretty_name}

    def push_command(self, output_dir: str, repo_id: str = "ORG/NAME") -> str:
        """The ``hf-dr push`` command that publishes a run of this recipe with its layout, license and title."""
        return (f'hf-dr push --run-dir {output_dir} {repo_id} --layout {self.layout} --license {self.license} '
                f'--pretty-name "{self.pretty_name}"')

    def card_notes(self) -> str:
        """Markdown for the dataset card: the recipe, what was substituted and why, and the source's BibTeX."""
        teacher = (", ".join(f"`{t}`" for t in self.teacher) if self.teacher else
                   f"{len(self.teacher_seeds)} x `{self.teacher_base}` fine-tuned on `{self.dataset_id}` "
                   f"(seeds {list(self.teacher_seeds)}) with `hf-dr finetune-teacher`")
        lines = [f"### Recipe `{self.name}`", "", f"- source: `{self.dataset_id}` split `{self.split}`"
                 f"{f' at `{self.revision}`' if self.revision else ''}", f"- teacher: {teacher}",
                 f"- policy `{self.policy}`, N = {self.num_samples}, k = {self.topk}, seed {self.seed}",
                 f"- layout: {self.layout}; license: `{self.license}`"]
        if self.notes:
            lines += ["", "### Differences from the paper", ""] + [f"- {note}" for note in self.notes]
        if self.source_citation:
            lines += ["", "### Source dataset citation", "", "```bibtex", self.source_citation.strip(), "```"]
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """One line for ``hf-dr builders``.

        Example:
            >>> from hf_dr.builders import get_builder
            >>> get_builder("imagenet_plus_small").summary().split(":")[0]
            'imagenet_plus_small'
        """
        teacher = (f"{len(self.teacher)} pinned timm teachers" if self.teacher else
                   f"{len(self.teacher_seeds)} x {self.teacher_base} fine-tuned (needs --teacher-spec)")
        return (f"{self.name}: {self.pretty_name} from {self.dataset_id} ({self.split}); {teacher}; {self.policy}, "
                f"N={self.num_samples}, k={self.topk}; {self.layout}")

    def to_dict(self) -> dict[str, Any]:
        return to_json_value(asdict(self))
