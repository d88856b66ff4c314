"""Teachers: one timm model or an ensemble of them whose softmax probabilities are averaged.

A member is named by a *spec*:

- ``"resnet50.a1_in1k"``: a timm model with its pretrained weights from the Hub (needs network access);
- ``"hf-hub:org/teacher@v1"``: a timm model repo on the Hub (``hf-dr push-model`` writes one) at a branch, tag or
  commit; loading pins it to the commit, which the run records (:mod:`hf_dr.models.hub_weights`);
- ``"resnet50=path/to/weights.safetensors"``: a timm architecture with local weights (``.safetensors``, ``.pth``);
- ``"local-dir:path/to/dir"`` (or just an existing directory): a model saved with ``timm.models.save_for_hf``;
- a dict ``{"arch": ..., "weights": ..., "input_size": [3, 288, 288], ...}``, e.g. one entry of a teacher spec file
  (:func:`load_teacher_spec`), whose optional ``input_size``, ``interpolation``, ``mean``, ``std``, ``crop_pct``
  override the member's timm data config and ``temperature`` divides its logits (a calibrated teacher,
  :mod:`hf_dr.models.teacher_quality`). The format is documented in ``docs/teachers.md``.

Every member sees the augmented crop at its own input size, interpolation and normalisation (its resolved timm data
config). Members with the same weights are refused (timm 1.0.31 maps the four ``ig_resnext101_32x*d`` names to one
checkpoint), checked by :func:`state_dict_sha256`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from hf_dr.augment.functional import normalize
from hf_dr.errors import (
    ClassCountMismatchError,
    InvalidConfigError,
    TeacherError,
    WeightsNotFoundError,
)
from hf_dr.files import read_json, to_json_value
from hf_dr.models.hub_weights import hub_fields, pin_hub_member, split_hub_name
from hf_dr.models.weights import build_error, check_exists, head_size, refuse_random_head, tensor_shapes, weight_files

DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class MemberSpec:
    """How to build one teacher member (see the module docstring for the string forms).

    Args:
        arch (`str`): timm model name, optionally with a pretrained tag (``"resnet50.a1_in1k"``); ``"local-dir"``
            for a directory saved with ``save_for_hf``; ``"hf-hub:ORG/NAME"`` for a timm model repo on the Hub.
        weights (`str`, *optional*): a local weights file or ``save_for_hf`` directory; Hub weights when None.
        num_classes (`int`, *optional*): head size; read from the weights file when not given.
        input_size, interpolation, mean, std, crop_pct (*optional*): overrides of the member's timm data config.
        temperature (`float`, *optional*): the member's logits are divided by it before the softmax (post-hoc
            calibration, fitted by :func:`hf_dr.models.teacher_quality.fit_temperature`); 1 when not given.
        revision (`str`, *optional*): a Hub member's branch, tag or commit (``"hf-hub:ORG/NAME@REVISION"`` gives it
            too); the default branch when not given. A loaded member holds the commit it was resolved to.

    Example:
        >>> MemberSpec.parse("resnet18=weights/r18.safetensors")
        MemberSpec(arch='resnet18', weights='weights/r18.safetensors', num_classes=None, input_size=None, \
interpolation=None, mean=None, std=None, crop_pct=None, temperature=None, revision=None)
        >>> spec = MemberSpec.parse("hf-hub:me/teacher@v1")
        >>> spec.arch, spec.revision, spec.hub_id, str(spec)
        ('hf-hub:me/teacher', 'v1', 'me/teacher', 'hf-hub:me/teacher@v1')
    """

    arch: str
    weights: str | None = None
    num_classes: int | None = None
    input_size: tuple[int, int, int] | None = None
    interpolation: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None
    temperature: float | None = None
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.temperature is not None and not self.temperature > 0:
            raise InvalidConfigError(f"a member's temperature should be positive, but got {self.temperature}")
        arch, revision = hub_fields(self.arch, self.revision, self.weights)
        object.__setattr__(self, "arch", arch)
        object.__setattr__(self, "revision", revision)

    @property
    def hub_id(self) -> str | None:
        """The model repo of a Hub member (``hf-hub:ORG/NAME``), else None."""
        split = split_hub_name(self.arch)
        return None if split is None else split[0]

    @classmethod
    def parse(cls, spec: str | dict[str, Any] | MemberSpec) -> MemberSpec:
        """A spec from a string, a dict (one entry of a spec file) or a spec."""
        if isinstance(spec, MemberSpec):
            return spec
        if isinstance(spec, dict):
            return cls.from_dict(spec)
        if spec.startswith("local-dir:"):
            return cls("local-dir", weights=spec[len("local-dir:"):])
        if "=" in spec:
            arch, weights = spec.split("=", 1)
            return cls(arch.strip(), weights=weights.strip())
        if os.path.isdir(spec):
            return cls("local-dir", weights=spec)
        return cls(spec)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MemberSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown or "arch" not in values:
            raise InvalidConfigError(
                f"a teacher member needs 'arch' and accepts only {sorted(known)}, but got keys {sorted(values)}"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The non-empty fields, JSON-serialisable (the inverse of :meth:`from_dict`)."""
        return {k: to_json_value(v) for k, v in asdict(self).items() if v is not None}

    @property
    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in DATA_CONFIG_KEYS if getattr(self, k) is not None}

    def __str__(self) -> str:
        if self.weights is None:
            return self.arch if self.revision is None else f"{self.arch}@{self.revision}"
        return f"local-dir:{self.weights}" if self.arch == "local-dir" else f"{self.arch}={self.weights}"


def load_teacher_spec(path: str | os.PathLike) -> list[MemberSpec]:
    """Reads a teacher spec file: a JSON list of members, or ``{"members": [...]}``.

    Each member is what :class:`MemberSpec` takes: ``"ARCH"``, ``"ARCH=WEIGHTS"``, ``"local-dir:DIR"``,
    ``"hf-hub:ORG/NAME@REVISION"`` or an object (``arch``, ``weights``, and optionally ``revision``, ``input_size``,
    ``interpolation``, ``mean``, ``std``, ``crop_pct``, ``num_classes``, ``temperature``; docs/teachers.md). A
    relative ``weights`` path is read next to the spec file when a file is there (a spec and its weights travel
    together), else from the working directory.

    Example:
        >>> import json, tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        ...     json.dump([{"arch": "resnet18", "weights": "r18.safetensors", "input_size": [3, 64, 64]}], f)
        >>> load_teacher_spec(f.name)[0].input_size
        (3, 64, 64)
    """
    if not os.path.isfile(path):
        raise WeightsNotFoundError(f"teacher spec file {str(path)!r} does not exist; pass the path of a JSON file")
    content = read_json(path, what="teacher spec file", fix="a JSON list of members (docs/teachers.md)")
    members = content.get("members") if isinstance(content, dict) else content
    if not isinstance(members, list) or not members:
        raise InvalidConfigError(f"{path}: a teacher spec is a non-empty JSON list of members or {{'members': [...]}}")
    return [_beside(MemberSpec.parse(m), os.path.dirname(os.path.abspath(path))) for m in members]


def _beside(spec: MemberSpec, folder: str) -> MemberSpec:
    """``spec`` with a relative weights path resolved against ``folder`` when it names something there."""
    if not spec.weights or os.path.isabs(spec.weights) or not os.path.exists(os.path.join(folder, spec.weights)):
        return spec
    return replace(spec, weights=os.path.join(folder, spec.weights))


def state_dict_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state dict: every tensor's name, dtype, shape and bytes, in sorted name order.

    Example:
        >>> state_dict_sha256(torch.nn.Linear(2, 2)) == state_dict_sha256(torch.nn.Linear(2, 2))
        False
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ViewSpec:
    """The pixels a member needs: channels, height, width and the crop's resize interpolation."""

    channels: int
    height: int
    width: int
    interpolation: str


@dataclass
class Member:
    """A loaded member: the model, its spec, resolved data config, weight hash and local weight files' records."""

    spec: MemberSpec
    model: torch.nn.Module
    data_config: dict[str, Any]
    sha256: str
    files: list[dict[str, Any]] | None = None
    num_classes: int = field(init=False)

    def __post_init__(self) -> None:
        self.num_classes = int(self.model.num_classes)

    @property
    def view(self) -> ViewSpec:
        channels, height, width = (int(v) for v in self.data_config["input_size"])
        return ViewSpec(channels, height, width, str(self.data_config["interpolation"]))

    def describe(self) -> dict[str, Any]:
        """Spec, weight hash, class count, resolved data config and weight files, for the run's config file."""
        config = to_json_value(dict(self.data_config))
        files = {} if self.files is None else {"weights_files": self.files}
        return {"spec": self.spec.to_dict(), "sha256": self.sha256, "num_classes": self.num_classes,
                "data_config": config, **files}


def load_member(spec: str | dict[str, Any] | MemberSpec) -> Member:
    """Builds one member in eval mode on the CPU (see :class:`MemberSpec` for the forms).

    Example:
        >>> member = load_member("resnet18=weights/r18.safetensors")  # doctest: +SKIP
        >>> member.view  # doctest: +SKIP
        ViewSpec(channels=3, height=224, width=224, interpolation='bicubic')
    """
    import timm
    from safetensors import SafetensorError

    import hf_dr.models.networks  # noqa: F401 (the small networks are teachers too: register them with timm)

    spec = MemberSpec.parse(spec)
    overlay = dict(spec.overrides)
    kwargs: dict[str, Any] = {}
    name, files = spec.arch, None
    if spec.hub_id is not None:  # pinned to the commit its revision names now: the run records that one
        spec = replace(spec, revision=pin_hub_member(str(spec), spec.hub_id, spec.revision))
        name = str(spec)
    elif spec.weights is not None:
        check_exists(spec)
        files = weight_files(spec.weights)
        if spec.arch == "local-dir" or os.path.isdir(spec.weights):
            name = f"local-dir:{spec.weights}"
        else:
            shapes = tensor_shapes(spec.weights)
            num_classes = spec.num_classes or head_size(spec.arch, shapes)
            overlay["file"] = spec.weights
            if num_classes is not None:
                overlay["num_classes"] = kwargs["num_classes"] = num_classes
    elif spec.num_classes is not None:
        refuse_random_head(spec)
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError, SafetensorError) as err:
        raise build_error(spec, err) from err
    model.eval().requires_grad_(False)
    data_config = timm.data.resolve_model_data_config(model)
    return Member(spec, model, data_config, state_dict_sha256(model), files)


def mean_probabilities(member_logits: Iterable[torch.Tensor]) -> torch.Tensor:
    """The ensemble rule of hf_dr: the mean of the members' softmax probabilities, in float32.

    :class:`Teacher`, :class:`hf_dr.models.students.ProbabilityEnsemble` and the ensemble metrics of
    :func:`hf_dr.train.finetune.finetune_teacher` all average with this function (summed member by member, then
    divided by the member count).

    Args:
        member_logits (`Iterable[torch.Tensor]`): one ``[B, num_classes]`` logits tensor per member (any dtype).

    Returns:
        `torch.Tensor`: ``float32 [B, num_classes]`` probabilities.

    Example:
        >>> mean_probabilities([torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 1.0986123]])])  # 1:1 and 1:3
        tensor([[0.3750, 0.6250]])
    """
    total, count = None, 0
    for logits in member_logits:
        probs = logits.float().softmax(dim=-1)
        total = probs if total is None else total + probs
        count += 1
    if total is None:
        raise TeacherError("an ensemble needs at least one member")
    return total / count


class Teacher(torch.nn.Module):
    """An ensemble of :class:`Member` models: averages their softmax probabilities (float32).

    Each member reads the ``uint8`` view of its :class:`ViewSpec`; :attr:`views` lists the distinct views (members
    with equal views share one) and :meth:`forward` takes one batch per view.

    Args:
        members (`Sequence[Member]`): loaded members (see :func:`create_teacher`).
        precision (`str`, *optional*, defaults to ``"fp32"``): ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast).
        channels_last (`bool`, *optional*, defaults to False): run the members in channels-last memory format.
    """

    def __init__(self, members: Sequence[Member], precision: str = "fp32", channels_last: bool = False) -> None:
        super().__init__()
        if not members:
            raise TeacherError("a teacher needs at least one member")
        if precision not in PRECISIONS:
            raise InvalidConfigError(f"precision should be one of {sorted(PRECISIONS)}, but got {precision!r}.")
        _refuse_duplicates(members)
        counts = {m.num_classes for m in members}
        if len(counts) > 1:
            raise TeacherError(f"ensemble members predict different class counts: {_names_by(members, 'num_classes')}")
        self.members = list(members)
        self.models = torch.nn.ModuleList(m.model for m in members)
        self.num_classes = counts.pop()
        self.precision, self.channels_last = precision, bool(channels_last)
        self.views: list[ViewSpec] = list(dict.fromkeys(m.view for m in members))
        self._view_of = [self.views.index(m.view) for m in members]
        if self.channels_last:
            self.models.to(memory_format=torch.channels_last)

    def forward(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        """Averaged class probabilities ``float32 [B, num_classes]`` from ``uint8 [B, C, H, W]`` batches, one per
        entry of :attr:`views`."""
        member_logits = []
        for member, model, view in zip(self.members, self.models, self._view_of, strict=True):
            pixels = normalize(views[view], member.data_config["mean"], member.data_config["std"])
            if self.channels_last:
                pixels = pixels.contiguous(memory_format=torch.channels_last)
            with self._autocast(pixels.device.type):
                logits = model(pixels)
            temperature = member.spec.temperature
            member_logits.append(logits if temperature is None else logits.float() / temperature)
        return mean_probabilities(member_logits)

    def _autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        dtype = PRECISIONS[self.precision]
        return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)

    def describe(self) -> list[dict[str, Any]]:
        """One entry per member (spec, weight hash, class count, data config)."""
        return [m.describe() for m in self.members]

    def check_num_classes(self, num_classes: int | None) -> None:
        """Raises :class:`ClassCountMismatchError` if the dataset's class count differs from the teacher's."""
        if num_classes is not None and num_classes != self.num_classes:
            raise ClassCountMismatchError(
                f"the teacher predicts {self.num_classes} classes but the dataset's labels have {num_classes}; use "
                f"a teacher fine-tuned on this dataset's labels (a head with {num_classes} outputs)"
            )


def _refuse_duplicates(members: Sequence[Member]) -> None:
    by_hash: dict[str, list[str]] = {}
    for member in members:
        by_hash.setdefault(member.sha256, []).append(str(member.spec))
    same = [names for names in by_hash.values() if len(names) > 1]
    if same:
        raise TeacherError(
            f"ensemble members {same} have identical weights (same state-dict SHA-256); an ensemble of copies is "
            "one model. Pin distinct checkpoints (exact pretrained tags or different weight files)."
        )


def _names_by(members: Sequence[Member], attribute: str) -> dict[str, Any]:
    return {str(m.spec): getattr(m, attribute) for m in members}


def create_teacher(
    members: str | MemberSpec | dict[str, Any] | Sequence[str | MemberSpec | dict[str, Any]],
    num_classes: int | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    device: str | torch.device = "cpu",
) -> Teacher:
    """Loads a teacher: one member or an ensemble averaging its members' probabilities.

    Args:
        members: one spec or a list of specs (strings, dicts or :class:`MemberSpec`; see the module docstring).
        num_classes (`int`, *optional*): the class count the dataset has; a teacher predicting another count is
            refused with :class:`ClassCountMismatchError`.
        precision (`str`, *optional*, defaults to ``"fp32"``): autocast precision (``"bf16"``/``"fp16"`` on GPU).
        channels_last (`bool`, *optional*, defaults to False): channels-last memory format.
        device (`str` or `torch.device`, *optional*, defaults to ``"cpu"``): where the members run.

    Example (an ensemble of two randomly initialised ``test_resnet`` members, saved to files):
        >>> import tempfile, safetensors.torch, timm
        >>> folder = tempfile.mkdtemp()
        >>> for name in "ab":
        ...     safetensors.torch.save_file(timm.create_model("test_resnet", num_classes=10).state_dict(),
        ...                                 f"{folder}/{name}.safetensors")
        >>> teacher = create_teacher([f"test_resnet={folder}/{name}.safetensors" for name in "ab"], num_classes=10)
        >>> teacher.num_classes, len(teacher.members)
        (10, 2)
        >>> create_teacher(f"test_resnet={folder}/a.safetensors", num_classes=100)
        Traceback (most recent call last):
        ...
        hf_dr.errors.ClassCountMismatchError: ...
    """
    specs = [members] if isinstance(members, (str, MemberSpec, dict)) else list(members)
    teacher = Teacher([load_member(s) for s in specs], precision=precision, channels_last=channels_last)
    teacher.check_num_classes(num_classes)
    return teacher.to(device)
