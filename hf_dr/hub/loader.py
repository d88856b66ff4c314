"""``create_reinforced_loader``: a drop-in for ``timm.data.create_loader`` that yields ``(input, soft_target)``.

timm's ``train.py`` reads ``(input, target)`` batches and calls ``dataset_train.set_epoch(epoch)`` when the dataset has
one; its ``SoftTargetCrossEntropy`` takes dense soft targets. The loader made here gives exactly that from a reinforced
dataset: each sample's stored view of the epoch (the one its teacher labelled) and the stored soft label, with the
epoch advanced in every DataLoader worker (persistent ones included) and every rank. Nothing in timm reads stored
soft labels, and its ``hfds/`` reader would train cross-entropy on the hard labels of a reinforced dataset: this
loader is the change to make instead (docs/training.md, "timm").

The two habits of setting the epoch both work: ``loader.dataset.set_epoch(epoch)`` (timm's loop) or
``loader.set_epoch(epoch)`` before iterating; a loader iterated again without either moves on to the next epoch by
itself, so a loop that never sets it still replays a new stored view per epoch.

Example:
    >>> import hf_dr
    >>> loader = hf_dr.create_reinforced_loader("me/imagenet-plus", input_size=(3, 224, 224), batch_size=128,
    ...                                         num_workers=8, distributed=True)  # doctest: +SKIP
    >>> for epoch in range(start_epoch, num_epochs):  # doctest: +SKIP
    ...     loader.dataset.set_epoch(epoch)  # what timm's train.py already does
    ...     for input, target in loader:  # target: [B, num_classes] soft labels for SoftTargetCrossEntropy
    ...         ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader, DistributedSampler

from hf_dr.data.collate import TARGET_IDS, TARGET_PROBS, ReinforcedCollate
from hf_dr.data.epochs import set_epoch, transform_of
from hf_dr.errors import InvalidConfigError
from hf_dr.hub.load import load_reinforced

__all__ = ["ReinforcedLoader", "create_reinforced_loader"]


class EpochDataset(torch.utils.data.Dataset):
    """A map-style reinforced dataset as timm's loop expects one: ``set_epoch`` and ``(input, target)`` samples
    (``(view, target_ids, target_probs)`` from a replay with ``output="uint8"``, which :class:`TimmCollate`
    batches)."""

    def __init__(self, dataset: datasets.Dataset) -> None:
        self.dataset = dataset
        self.columns = getattr(transform_of(dataset), "output_columns", ["pixel_values", "labels"])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        row = self.dataset[index]
        return tuple(row[name] for name in self.columns)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, ...]]:
        rows = self.dataset[indices]  # one batched call of the transform
        return list(zip(*(rows[name] for name in self.columns), strict=True))

    @property
    def epoch(self) -> int:
        return transform_of(self.dataset).epoch

    def set_epoch(self, epoch: int) -> None:
        set_epoch(self.dataset, epoch)


class TimmCollate:
    """``(view, target_ids, target_probs)`` samples to ``(input, soft_target)`` batches, through the replay's
    :class:`~hf_dr.data.collate.ReinforcedCollate` (normalised and densified once per batch)."""

    def __init__(self, collate: ReinforcedCollate) -> None:
        self.collate = collate

    def __call__(self, samples: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.collate([dict(zip(("pixel_values", TARGET_IDS, TARGET_PROBS), sample, strict=True))
                              for sample in samples])
        return batch["pixel_values"], batch["labels"]


class EpochStream(torch.utils.data.IterableDataset):
    """A streamed reinforced dataset as timm's loop expects one: ``set_epoch`` and ``(input, target)`` samples."""

    def __init__(self, stream: datasets.IterableDataset) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for row in self.stream:
            yield row["pixel_values"], row["labels"]

    @property
    def epoch(self) -> int:
        return int(self.stream.epoch)

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)


class ReinforcedLoader(DataLoader):
    """A ``DataLoader`` of ``(input, soft_target)`` batches whose every pass replays the stored views of one epoch.

    The epoch is the one last set (``set_epoch`` here or on :attr:`dataset`); a pass that starts with the epoch of the
    previous pass unchanged moves on to the next one. ``device`` moves each batch there (pinned, non-blocking), as
    timm's prefetcher does; the inputs are normalised already.
    """

    def __init__(self, dataset: Any, device: torch.device | str | None = None, **loader_options: Any) -> None:
        super().__init__(dataset, **loader_options)
        self.device = None if device is None else torch.device(device)
        self._last_epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Selects the stored views of ``epoch`` (and the distributed sampler's shuffle of that epoch)."""
        self.dataset.set_epoch(epoch)
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.dataset.epoch
        if self._last_epoch is not None and epoch == self._last_epoch:
            epoch += 1  # nobody set the epoch since the last pass: the next one
        self.set_epoch(epoch)
        self._last_epoch = epoch
        batches = super().__iter__()
        if self.device is None:
            yield from batches
            return
        for inputs, targets in batches:
            yield inputs.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)


def create_reinforced_loader(
    dataset: str | datasets.Dataset | datasets.IterableDataset,
    input_size: int | Sequence[int] | None = None,
    batch_size: int = 128,
    is_training: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_workers: int = 1,
    distributed: bool = False,
    pin_memory: bool = False,
    device: torch.device | str | None = None,
    use_prefetcher: bool = False,
    persistent_workers: bool = True,
    seed: int = 0,
    split: str = "train",
    streaming: bool = False,
    data_config: dict[str, Any] | None = None,
    drop_last: bool | None = None,
    **load_options: Any,
) -> ReinforcedLoader:
    """A loader of a reinforced dataset for a timm training loop: ``(input, soft_target)`` batches.

    The arguments are those of ``timm.data.create_loader`` that still mean something when the augmentation is the
    stored one: the size and normalisation of the inputs, the batch, the workers, the distribution over ranks. Its
    augmentation arguments (``auto_augment``, ``re_prob``, ``scale``, mixup...) have no counterpart: the views are the
    stored ones, which the teacher labelled.

    Args:
        dataset (`str`, `datasets.Dataset` or `datasets.IterableDataset`): the Hub id of a reinforced dataset, loaded
            with :func:`hf_dr.load_reinforced`, or one loaded already (with its transform set).
        input_size (`int` or `tuple`, *optional*): ``(C, H, W)``, ``(H, W)`` or a side; 224 when neither it nor
            ``data_config`` gives one.
        batch_size (`int`, *optional*, defaults to 128): samples per batch (per rank).
        is_training (`bool`, *optional*, defaults to `True`): shuffle (map-style) and drop the last partial batch.
        mean, std (`tuple[float, ...]`, *optional*): normalisation; ``data_config``'s, else ImageNet's.
        num_workers (`int`, *optional*, defaults to 1): DataLoader worker processes.
        distributed (`bool`, *optional*, defaults to `False`): split over the ranks of ``torch.distributed``: a
            ``DistributedSampler`` (map-style) or ``datasets.distributed.split_dataset_by_node`` (streamed).
        pin_memory (`bool`, *optional*, defaults to `False`): pinned host batches.
        device (`torch.device`, *optional*): move batches there (timm's prefetcher does this for its loaders: pass
            ``device`` with ``use_prefetcher=True``).
        use_prefetcher (`bool`, *optional*, defaults to `False`): with ``device``, batches arrive on the device
            (pinned memory, non-blocking copies); the inputs are already normalised.
        persistent_workers (`bool`, *optional*, defaults to `True`): keep workers between epochs (the epoch reaches
            them through shared memory).
        seed (`int`, *optional*, defaults to 0): seed of the per-epoch choice of stored view and of the shuffle.
        split (`str`, *optional*, defaults to ``"train"``): the split, for a dataset given by name.
        streaming (`bool`, *optional*, defaults to `False`): stream a dataset given by name.
        data_config (`dict`, *optional*): a timm data config (``timm.data.resolve_data_config``): ``input_size``,
            ``mean`` and ``std`` are read from it.
        drop_last (`bool`, *optional*): drop the last partial batch (defaults to ``is_training``).
        load_options: more arguments of :func:`hf_dr.load_reinforced` (``revision``, ``source``, ``verify_images``,
            ``curriculum``...). ``output="uint8"`` (or a dataset loaded with it) normalises and densifies once per
            batch (:class:`hf_dr.ReinforcedCollate`): the same batches for less CPU.

    Example (a dataset loaded already: 4 bundled digits reinforced by a random ``test_resnet``; a Hub id of a
    pushed one works the same, ``create_reinforced_loader("me/digits-plus", input_size=32, ...)``):
        >>> from hf_dr import ReinforcedTransform, load_run_records
        >>> from hf_dr.generate.examples import tiny_run
        >>> digits, run = tiny_run()  # 4 bundled digits reinforced by a random test_resnet
        >>> train = ReinforcedTransform(load_run_records(run), size=32).attach(digits)
        >>> loader = create_reinforced_loader(train, batch_size=2, num_workers=0)
        >>> for epoch in range(2):
        ...     loader.dataset.set_epoch(epoch)  # what timm's train.py does; another stored view per epoch
        ...     for input, target in loader:
        ...         pass
        >>> input.shape, target.shape, round(target.sum(1)[0].item(), 4)  # dense soft targets
        (torch.Size([2, 3, 32, 32]), torch.Size([2, 10]), 1.0)
    """
    size, mean, std = _inputs(input_size, mean, std, data_config)
    if isinstance(dataset, str):
        normalisation = {name: value for name, value in (("mean", mean), ("std", std)) if value is not None}
        dataset = load_reinforced(dataset, split=split, streaming=streaming, size=size, seed=seed, **normalisation,
                                  **load_options)
    elif load_options:
        raise InvalidConfigError(f"{sorted(load_options)} load a dataset given by name; this one is loaded already.")
    streamed = isinstance(dataset, datasets.IterableDataset)
    if not streamed and transform_of(dataset) is None:
        raise InvalidConfigError("the dataset has no reinforced transform set: load it with hf_dr.load_reinforced, or "
                                 "pass its Hub id")
    rank, world_size = _ranks(distributed)
    sampler, collate_fn = None, None
    if streamed:  # a stream replays float32 samples (StreamReplay)
        if world_size > 1:
            from datasets.distributed import split_dataset_by_node

            dataset = split_dataset_by_node(dataset, rank=rank, world_size=world_size)
        wrapped: Any = EpochStream(dataset)
    else:
        wrapped = EpochDataset(dataset)
        transform = transform_of(dataset)
        if getattr(transform, "output", "") == "uint8":
            collate_fn = TimmCollate(transform.collate())
        if world_size > 1:
            sampler = DistributedSampler(wrapped, num_replicas=world_size, rank=rank, shuffle=is_training, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    use_device = device if use_prefetcher or device is not None else None
    return ReinforcedLoader(
        wrapped, device=use_device, batch_size=batch_size, shuffle=is_training and sampler is None and not streamed,
        sampler=sampler, num_workers=num_workers, pin_memory=pin_memory or use_device is not None,
        drop_last=is_training if drop_last is None else drop_last, generator=generator,
        persistent_workers=persistent_workers and num_workers > 0, collate_fn=collate_fn,
    )


def _inputs(input_size: Any, mean: Any, std: Any, data_config: dict[str, Any] | None
            ) -> tuple[tuple[int, int], tuple[float, ...] | None, tuple[float, ...] | None]:
    """Height and width, mean and std from the arguments, else ``data_config``, else 224 and the replay's default."""
    config = data_config or {}
    size = input_size if input_size is not None else config.get("input_size", 224)
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)[-2:]
    mean = mean if mean is not None else config.get("mean")
    std = std if std is not None else config.get("std")
    return size, (None if mean is None else tuple(mean)), (None if std is None else tuple(std))


def _ranks(distributed: bool) -> tuple[int, int]:
    if not distributed:
        return 0, 1
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise InvalidConfigError("distributed=True needs an initialised torch.distributed process group (timm's "
                                 "train.py, torchrun and accelerate launch make one)")
    return torch.distributed.get_rank(), torch.distributed.get_world_size()
