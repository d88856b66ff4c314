"""Teacher weight files on disk: reading their tensor shapes, recording them, and noticing that one was replaced.

A run records every local weight file of its members (``weights_files`` in ``reinforce_config.json``): its name,
size, modification and change times, inode and SHA-256. Rerunning a finished run loads no teacher, so it checks the
files instead: a file whose size and times are unchanged is the recorded one (the kernel updates ``st_ctime`` on
every write and replacement, and no tool can set it back); any other is hashed again (about 0.1-0.2 s per 100 MB),
and one whose hash differs makes the run load the teacher and compare its state-dict hash with the recorded one.

Load errors of a weights file (not safetensors, truncated, tensors of other shapes) are reported on one line that
names the file, the tensors and their shapes (:func:`build_error`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import torch

from hf_dr.errors import TeacherError, WeightsFileError, WeightsNotFoundError
from hf_dr.files import file_sha256

MAX_NAMES_SHOWN = 6
_SIZE_MISMATCH = re.compile(r"size mismatch for ([^:\s]+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) "
                            r"from checkpoint, the shape in current model is torch\.Size\(\[([^\]]*)\]\)")
_KEYS = re.compile(r"(Missing|Unexpected) key\(s\) in state_dict: ([^\n]*)")


# -- reading ------------------------------------------------------------------------------------------------------
def check_exists(spec: Any) -> None:
    """Raises :class:`WeightsNotFoundError` unless the weights of member ``spec`` exist."""
    if not os.path.exists(spec.weights):
        raise WeightsNotFoundError(
            f"weights of teacher member {str(spec)!r} not found at {os.path.abspath(spec.weights)!r}; pass an "
            "existing .safetensors/.pth file (ARCH=FILE) or a directory saved with timm's save_for_hf"
        )


def tensor_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a ``.safetensors`` or PyTorch weights file, or :class:`WeightsFileError`
    naming the file when it cannot be read (truncated, or in neither format)."""
    try:
        if path.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
        state = _torch_state(path)
    except Exception as err:  # safetensors raises its own SafetensorError, torch.load pickle, zip and OS errors
        kind = "safetensors" if path.endswith(".safetensors") else "PyTorch (torch.save)"
        raise WeightsFileError(
            f"{path}: not a readable {kind} weights file ({one_line(err)}); it is truncated or in another format. "
            "Copy or download it again, or pass the file the model was saved to (.safetensors or .pth)."
        ) from err
    state = state.get("state_dict", state) if isinstance(state, dict) else {}
    return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}


def _torch_state(path: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:  # a file in the legacy (non-zip) format cannot be memory-mapped
        if "mmap" not in str(err):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def head_size(arch: str, weights: str | dict[str, tuple[int, ...]]) -> int | None:
    """The class count of the classifier stored in ``weights`` (a file, or its :func:`tensor_shapes`) for timm
    architecture ``arch`` (None if unknown)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    classifiers = cfg.classifier if cfg is not None else None
    classifiers = [classifiers] if isinstance(classifiers, str) else list(classifiers or [])
    shapes = tensor_shapes(weights) if isinstance(weights, str) else weights
    for classifier in classifiers:
        shape = shapes.get(f"{classifier}.weight") or shapes.get(f"{classifier}.bias")
        if shape:
            return int(shape[0])
    return None


def one_line(err: BaseException, limit: int = 600) -> str:
    """An error's message on one line (whitespace collapsed), cut to ``limit`` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def state_dict_problem(err: BaseException) -> str | None:
    """What a ``load_state_dict`` error says, on one line: the tensors whose shapes differ (file vs model) and the
    missing and unexpected names; None for another error.

    Example:
        >>> state_dict_problem(RuntimeError("Error(s) in loading state_dict for ResNet:\\n\\tsize mismatch for "
        ...     "fc.bias: copying a param with shape torch.Size([10]) from checkpoint, the shape in current model is "
        ...     "torch.Size([7])."))
        'fc.bias is [10] in the file but [7] in the model'
    """
    text = str(err)
    parts = [f"{name} is [{ours}] in the file but [{theirs}] in the model"
             for name, ours, theirs in _SIZE_MISMATCH.findall(text)]
    parts = _shorten(parts)
    for kind, names in _KEYS.findall(text):
        found = re.findall(r'"([^"]+)"', names)
        where = "missing from the file" if kind == "Missing" else "in the file but not in the model"
        parts.append(f"{len(found)} tensors {where} ({', '.join(_shorten(found))})")
    return "; ".join(parts) if parts else None


def _shorten(items: list[str]) -> list[str]:
    extra = len(items) - MAX_NAMES_SHOWN
    return items if extra <= 0 else [*items[:MAX_NAMES_SHOWN], f"{extra} more"]


def build_error(spec: Any, err: Exception) -> TeacherError:
    """The error of a member (:class:`~hf_dr.models.teacher.MemberSpec`) timm could not build: the tensors that do
    not fit, or timm's message and what to check."""
    problem = state_dict_problem(err)
    if problem is not None:
        return WeightsFileError(
            f"could not build teacher member {str(spec)!r}: the weights in {spec.weights} do not fit it: {problem}. "
            "Pass the architecture (and num_classes) the file was saved from, or a file saved from this one."
        )
    return TeacherError(
        f"could not build teacher member {str(spec)!r}: {one_line(err)}. Check the architecture name "
        "(timm.list_models()), that the weights belong to it, and for Hub weights that the Hub is reachable (a Hub "
        "repo member: that the repo holds a timm model, as `hf-dr push-model` writes)."
    )


def refuse_random_head(spec: Any) -> None:
    """Refuses a timm pretrained member whose ``num_classes`` would replace its trained head with a random one."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.arch)
    if cfg is not None and cfg.num_classes != spec.num_classes:
        raise TeacherError(
            f"teacher member {str(spec)!r}: num_classes={spec.num_classes} would replace the pretrained "
            f"{cfg.num_classes}-class head with a random one. A teacher needs a head trained on your classes: pass "
            "its fine-tuned weights (ARCH=weights.safetensors)."
        )


# -- recording and change detection -------------------------------------------------------------------------------
def _files_of(path: str) -> list[tuple[str, str]]:
    """(recorded name, path) of a weights file, or of every file of a weights directory."""
    if os.path.isdir(path):
        return [(name, os.path.join(path, name)) for name in sorted(os.listdir(path))
                if os.path.isfile(os.path.join(path, name))]
    return [(os.path.basename(path), path)]


def _stat(path: str) -> dict[str, int]:
    st = os.stat(path)
    return {"num_bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}


def weight_files(path: str) -> list[dict[str, Any]]:
    """The records of a member's weights (a file, or the files of a ``save_for_hf`` directory): name, size, times,
    inode and SHA-256 (the times are read before the bytes, so a file changed meanwhile is hashed again later)."""
    records = []
    for name, file in _files_of(path):
        stat = _stat(file)
        records.append({"name": name, **stat, "sha256": file_sha256(file)})
    return records


def changed_weights(current: Sequence[dict[str, Any]], recorded: Sequence[dict[str, Any]]) -> list[str]:
    """The local weights (paths) of the members whose files may not be the ones the run recorded.

    ``current`` holds this run's members (``{"spec": ...}``), ``recorded`` the config's. A file with the recorded
    size and times is not read; another is hashed. A Hub model repo member (``hf-hub:``) counts as changed unless it
    is given at the commit the run recorded (a branch or tag may have moved: the member is loaded and its weight hash
    compared); timm pretrained names are not checked (their names pin them); a member recorded without file records
    (older runs) counts as changed.
    """
    changed = []
    for now, then in zip(current, recorded, strict=True):
        arch, revision = now["spec"].get("arch") or "", now["spec"].get("revision")
        if arch.startswith("hf-hub:"):
            if revision is None or revision != then["spec"].get("revision"):
                changed.append(arch if revision is None else f"{arch}@{revision}")
            continue
        path = now["spec"].get("weights")
        if path is None and then["spec"].get("weights") is None:
            continue
        records = then.get("weights_files")
        if path is None or records is None or not os.path.exists(path) or not _same_files(path, records):
            changed.append(path or now["spec"].get("arch"))
    return changed


def _same_files(path: str, records: Sequence[dict[str, Any]]) -> bool:
    files = _files_of(path)
    if [name for name, _ in files] != [r.get("name") for r in records]:
        return False
    for (_, file), record in zip(files, records, strict=True):
        stat = _stat(file)
        if stat == {k: record.get(k) for k in stat}:
            continue
        if stat["num_bytes"] != record.get("num_bytes") or file_sha256(file) != record.get("sha256"):
            return False
    return True
