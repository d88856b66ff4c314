"""``PreloadedDataset``: decode a small dataset's images once and run a ``set_transform`` hook on them directly.

For small images (28 x 28 Fashion-MNIST, CIFAR) the Arrow formatting and PNG decoding that ``datasets`` repeats for
every access cost several times the augmentation itself. This wrapper keeps the decoded columns in memory and calls
the same transform object (:class:`hf_dr.ReinforcedTransform`, :class:`hf_dr.AugmentTransform`,
:class:`hf_dr.EvalTransform`), so its batches equal those of ``transform.attach(dataset)`` exactly, only faster.
Use it when the decoded images fit in memory.
"""

from __future__ import annotations

from typing import Any

import datasets
import torch

from hf_dr.data.columns import check_columns


class PreloadedDataset(torch.utils.data.Dataset):
    """A map-style dataset of ``transform(columns)`` over the in-memory decoded columns of ``dataset``.

    Args:
        dataset (`datasets.Dataset`): the source rows (its own format and transform are ignored).
        transform: a hook with ``input_columns`` and ``__call__(batch)`` (``set_epoch`` is reached through
            :attr:`transform`).

    Example (4 bundled digits reinforced by a random ``test_resnet``; the same samples, decoded once):
        >>> from hf_dr import ReinforcedTransform, load_run_records
        >>> from hf_dr.generate.examples import tiny_run
        >>> digits, run = tiny_run()  # 4 bundled digits reinforced by a random test_resnet
        >>> transform = ReinforcedTransform(load_run_records(run), size=28)
        >>> fast = PreloadedDataset(digits, transform)
        >>> torch.equal(fast[0]["pixel_values"], transform.attach(digits)[0]["pixel_values"])
        True
    """

    def __init__(self, dataset: datasets.Dataset, transform: Any) -> None:
        columns = list(transform.input_columns)
        options = getattr(transform, "column_options", None)  # hf_dr's hooks name the option of each column
        if options is not None:
            check_columns(dataset, **options)
        else:
            check_columns(dataset, *columns, fix="Pass a transform whose input_columns the dataset has.")
        decoded = dataset.with_format(None).select_columns(columns)[:]  # decoded once: Pillow images, lists
        self.columns = {name: list(decoded[name]) for name in columns}
        if hasattr(transform, "bind_images"):  # a replay checks its image digests against these images
            transform.bind_images(dataset)
        self.transform = transform
        self._length = len(dataset)

    def __len__(self) -> int:
        return self._length

    def set_epoch(self, epoch: int) -> None:
        """Advances the transform's epoch (reinforced record choice or plain augmentation draws)."""
        self.transform.set_epoch(epoch)

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        batch = {name: [values[i] for i in indices] for name, values in self.columns.items()}
        out = self.transform(batch)
        return [{name: values[row] for name, values in out.items()} for row in range(len(indices))]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]
