"""``ReinforcedCollate``: the fast loader output, normalised and densified once per batch.

``ReinforcedTransform(..., output="uint8")`` returns each sample's replayed view as ``uint8 [C, H, W]`` and its soft
label as the stored top-k (``target_ids``, ``target_probs``); this collate makes of a list of such samples the batch
the default ``float32`` output gives (``pixel_values`` ``float32 [B, C, H, W]``, dense ``labels [B, num_classes]``),
with equal values bit for bit: the same :func:`~hf_dr.augment.functional.normalize` and
:func:`~hf_dr.data.soft_labels.densify` arithmetic, run once on the batch instead of once per sample.

Why it is faster: a ``float32`` view is 4x the bytes of the ``uint8`` one, and the per-sample path allocates 64 of
them per batch, then a batch to stack them into. Here each view is normalised straight into its slice of the batch,
which is written once (into shared memory inside a DataLoader worker, as ``default_collate`` allocates it, so it is
not copied again to reach the main process), and the dense targets are built in one NumPy call. Most of what is left
is page faults: glibc returns every freed block above its mmap threshold to the system, so each batch's tens of
megabytes are faulted in afresh; :func:`keep_freed_memory` (called once per process by the collate, unless
``keep_memory=False``) raises the thresholds so the next batch reuses the memory the last one freed.

Example (4 bundled digits reinforced by a random ``test_resnet``; the batches equal the ``float32`` output's):
    >>> from torch.utils.data import DataLoader
    >>> from hf_dr import ReinforcedTransform, load_run_records
    >>> from hf_dr.data.bundled import load_bundled
    >>> from hf_dr.generate.examples import tiny_run
    >>> digits, run = tiny_run()  # 4 bundled digits reinforced by a random test_resnet
    >>> fast = ReinforcedTransform(load_run_records(run), size=32, output="uint8")
    >>> batch = next(iter(DataLoader(fast.attach(digits), batch_size=4, collate_fn=fast.collate())))
    >>> batch["pixel_values"].dtype, batch["labels"].shape
    (torch.float32, torch.Size([4, 10]))
    >>> exact = ReinforcedTransform(load_run_records(run), size=32)  # float32 samples, default_collate
    >>> plain = next(iter(DataLoader(exact.attach(load_bundled("digits").select(range(4))), batch_size=4)))
    >>> torch.equal(batch["pixel_values"], plain["pixel_values"]), torch.equal(batch["labels"], plain["labels"])
    (True, True)
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from hf_dr.augment.functional import IMAGENET_MEAN, IMAGENET_STD, normalize
from hf_dr.data.soft_labels import densify
from hf_dr.errors import InvalidConfigError

__all__ = ["OUTPUTS", "TARGET_IDS", "TARGET_PROBS", "ReinforcedCollate", "check_output", "keep_freed_memory"]

OUTPUTS = ("float32", "uint8")
TARGET_IDS, TARGET_PROBS = "target_ids", "target_probs"  # not "label_ids": transformers' collator reads that name


def check_output(output: Any) -> str:
    """``output`` if it is one of :data:`OUTPUTS`; anything else raises :class:`InvalidConfigError`."""
    if output not in OUTPUTS:
        raise InvalidConfigError(f"output should be one of {OUTPUTS}, but got {output!r} instead: 'float32' returns "
                                 "normalised views and dense labels per sample, 'uint8' the views and the top-k for "
                                 "ReinforcedCollate to batch.")
    return output


class ReinforcedCollate:
    """Collates the samples of ``ReinforcedTransform(output="uint8")`` into ``{"pixel_values", "labels"}``.

    Picklable: pass it as a DataLoader's ``collate_fn`` (workers then build the batches). ``transform.collate()``
    makes one with the transform's normalisation, class count and leftover rule.

    Args:
        num_classes (`int`): the class count of the dense targets.
        mean, std (`tuple[float, ...]`, *optional*): normalisation, ImageNet's by default (the transform's).
        leftover (`str`, *optional*, defaults to ``"uniform"``): see :func:`hf_dr.densify`.
        channels_last (`bool`, *optional*, defaults to `False`): write ``pixel_values`` channels-last (the same
            values; what a channels-last model reads without a copy).
        keep_memory (`bool`, *optional*, defaults to `True`): call :func:`keep_freed_memory` once in the process the
            collate runs in (a DataLoader worker, or the main process without workers).

    Example (two samples as the ``uint8`` output gives them: a view and its stored top-2 of 10 classes):
        >>> import torch
        >>> collate = ReinforcedCollate(num_classes=10, mean=(0.5,), std=(0.5,))
        >>> sample = {"pixel_values": torch.full((1, 4, 4), 255, dtype=torch.uint8),
        ...           "target_ids": torch.tensor([3, 7]), "target_probs": torch.tensor([0.5, 0.25])}
        >>> batch = collate([sample, sample])
        >>> batch["pixel_values"].shape, batch["pixel_values"].max().item()  # (1 - 0.5) / 0.5
        (torch.Size([2, 1, 4, 4]), 1.0)
        >>> batch["labels"][0]  # the top-2, and the leftover 0.25 spread over the 8 other classes
        tensor([0.0312, 0.0312, 0.0312, 0.5000, 0.0312, 0.0312, 0.0312, 0.2500, 0.0312, 0.0312])
    """

    def __init__(self, num_classes: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 leftover: str = "uniform", channels_last: bool = False, keep_memory: bool = True) -> None:
        self.num_classes, self.mean, self.std = int(num_classes), tuple(mean), tuple(std)
        self.leftover, self.channels_last, self.keep_memory = leftover, bool(channels_last), bool(keep_memory)

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if self.keep_memory:
            keep_freed_memory()
        if isinstance(samples, Mapping):  # a batch of columns (a set_transform hook's output, a Trainer's features)
            samples = [dict(zip(samples, row, strict=True)) for row in zip(*samples.values(), strict=True)]
        if not samples:
            raise InvalidConfigError("ReinforcedCollate got an empty batch")
        _check_sample(samples[0])
        views = [sample["pixel_values"] for sample in samples]
        shape = views[0].shape
        for position, view in enumerate(views):
            if view.dtype != torch.uint8 or view.shape != shape:
                raise InvalidConfigError(f"sample {position} of this batch has pixel_values {view.dtype} "
                                         f"{tuple(view.shape)}, the first uint8 {tuple(shape)}: a batch needs one "
                                         "size (the transform's) and the uint8 output.")
        pixels = _batch_buffer((len(views), *shape), self.channels_last)
        for position, view in enumerate(views):  # each view converted in place: no uint8 batch, cache-warm slices
            normalize(view, self.mean, self.std, out=pixels[position])
        return {"pixel_values": pixels, "labels": self.labels(samples)}

    def labels(self, samples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """The dense ``float32 [B, num_classes]`` targets of the samples' top-k, equal to :func:`hf_dr.densify` per
        sample (one call when every sample stores the same k)."""
        ids = [sample[TARGET_IDS] for sample in samples]
        probs = [sample[TARGET_PROBS] for sample in samples]
        if len({len(i) for i in ids}) == 1:
            return densify(torch.stack(ids), torch.stack(probs), self.num_classes, self.leftover)
        return torch.stack([densify(i, p, self.num_classes, self.leftover) for i, p in zip(ids, probs, strict=True)])

    def __repr__(self) -> str:
        return (f"ReinforcedCollate(num_classes={self.num_classes}, mean={self.mean}, std={self.std}, "
                f"leftover={self.leftover!r}, channels_last={self.channels_last}, keep_memory={self.keep_memory})")


def _check_sample(sample: Mapping[str, Any]) -> None:
    missing = [name for name in ("pixel_values", TARGET_IDS, TARGET_PROBS) if name not in sample]
    if missing:
        hint = (" These are float32 samples already: drop collate_fn (the default collate stacks them) or make the "
                "transform with output='uint8'." if "labels" in sample else "")
        raise InvalidConfigError(f"ReinforcedCollate needs the samples of ReinforcedTransform(output='uint8'), with "
                                 f"'pixel_values', {TARGET_IDS!r} and {TARGET_PROBS!r}; this one has {sorted(sample)} "
                                 f"(missing {missing}).{hint}")


def _batch_buffer(shape: tuple[int, ...], channels_last: bool) -> torch.Tensor:
    """An uninitialised ``float32`` batch; in a DataLoader worker it lives in shared memory, as ``default_collate``
    allocates it, so sending it to the main process copies nothing."""
    memory_format = torch.channels_last if channels_last and len(shape) == 4 else torch.contiguous_format
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=torch.float32, memory_format=memory_format)
    numel = 1
    for side in shape:
        numel *= side
    storage = torch.empty(0, dtype=torch.float32)._typed_storage()._new_shared(numel, device="cpu")
    return torch.empty(0, dtype=torch.float32).new(storage).resize_(shape, memory_format=memory_format)


KEPT_BYTES = 1 << 30  # glibc keeps freed blocks up to this size in the heap, and this much free memory at its top
_KEPT_IN: set[int] = set()  # the processes (pids) where keep_freed_memory ran


def keep_freed_memory() -> bool:
    """Makes glibc's ``malloc`` keep freed memory for reuse in this process (once per process): blocks below
    :data:`KEPT_BYTES` come from the heap instead of their own ``mmap``, and up to that much free memory stays in it.

    A loader allocates batches of tens of megabytes and frees them a step later; by default glibc gives each back to
    the system and the next one is faulted in page by page, which costs about as much as normalising it. With this
    the freed batch is reused: the same values, less CPU (the process keeps up to :data:`KEPT_BYTES` it freed).
    Returns whether the settings apply (False off glibc, e.g. on macOS or Windows, where nothing changes). The
    environment variables ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` do the same for a whole program.
    """
    pid = os.getpid()
    if pid in _KEPT_IN:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    applied = bool(mallopt(-3, KEPT_BYTES)) and bool(mallopt(-1, KEPT_BYTES))  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    if applied:
        _KEPT_IN.add(pid)
    return applied
