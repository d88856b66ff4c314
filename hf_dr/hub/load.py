"""``load_reinforced``: a pushed reinforced dataset, ready to train on, from the Hub.

The repo revision is resolved to one commit first, so ``hf_dr.json``, ``reinforce_config.json`` and the data all come
from the same commit. Map-style loads convert no record first: the downloaded data files are opened as they are and
their records decoded one row group at a time when first needed; metadata-only repos also load the source recorded in
``hf_dr.json`` (repo id, pinned revision, split) and join the two by key, after checking that the source holds exactly
the reinforced rows. Source keys are recomputed as the run made them (its recorded ``columns["key_source"]``: a key
column, the image file's name or a content hash), and the image digests the run stored are compared with the source's
images, so an image that changed under its key is refused. All of it is :func:`hf_dr.hub.opening.open_reinforced`,
which opens a local run folder the same way.
"""

from __future__ import annotations

from typing import Any

import datasets

from hf_dr.data.streaming import ReinforcedIterableDataset
from hf_dr.generate.opening import MAX_KEYS_SHOWN, check_source_keys
from hf_dr.hub.opening import STREAM_KEY, StreamKeys, open_reinforced
from hf_dr.hub.push import SELF_CONTAINED
from hf_dr.hub.repo_meta import read_repo_json, read_split_meta, reinforced_repo

__all__ = ["MAX_KEYS_SHOWN", "SELF_CONTAINED", "STREAM_KEY", "StreamKeys", "check_source_keys", "load_reinforced",
           "open_reinforced", "read_repo_json", "read_split_meta", "reinforced_repo"]


def load_reinforced(
    repo_id: str,
    split: str = "train",
    revision: str | None = None,
    *,
    streaming: bool = False,
    source: str | datasets.Dataset | datasets.IterableDataset | None = None,
    source_revision: str | None = None,
    verify_source: bool = True,
    verify_images: str = "sample",
    cache_dir: str | None = None,
    token: str | None = None,
    num_proc: int | None = None,
    **transform_options: Any,
) -> datasets.Dataset | ReinforcedIterableDataset:
    """Loads a dataset pushed by :func:`hf_dr.push_to_hub` with the replay of its reinforcements set.

    Args:
        repo_id (`str`): the reinforced dataset repo.
        split (`str`, *optional*, defaults to ``"train"``): the split.
        revision (`str`, *optional*): a branch, tag or commit id of ``repo_id``; the default branch by default.
        streaming (`bool`, *optional*, defaults to False): return a lazily replayed :class:`ReinforcedIterableDataset`
            (``set_epoch`` advances the choice) instead of a map-style Dataset. Metadata-only, the source and the
            reinforcement files are both streamed and zipped in the run's row order (nothing converted first), each
            row's key checked against the reinforced row's: a source that lost, gained or reordered rows raises at
            that row; with the recorded source, one shard per source data file (per row group of a source of few
            files) the push recorded, else one. Self-contained: at least 8 shards (row ranges). Workers split them.
        source (`str` or `datasets.Dataset`, *optional*): metadata-only layout: the images, as a Hub id, a local
            folder or file, or a loaded dataset; by default the recorded source at its pinned revision.
        source_revision (`str`, *optional*): metadata-only layout: another revision of the source.
        verify_source (`bool`, *optional*, defaults to True): metadata-only layout: refuse a source whose rows are not
            exactly the reinforced ones in the recorded order. With False, extra rows are dropped and the order is
            free (rows are always joined by key); missing keys are refused either way.
        verify_images (`str`, *optional*, defaults to ``"sample"``): metadata-only layout: compare the image digests
            the run stored (runs keyed by a column or by path; a content key is a digest itself) with the source's
            images of the same keys and refuse a changed one: ``"sample"`` reads 64 rows drawn at random up front, then
            every row the first time a process replays it (:class:`hf_dr.data.digests.RowDigests`), ``"full"`` every
            row up front, ``"off"`` none (the soft labels were computed on the recorded images). A stream checks
            every row as it arrives; the self-contained layout checks its rows as they are replayed.
        cache_dir (`str`, *optional*): the ``datasets`` cache.
        token (`str`, *optional*): a Hub token; the logged-in one by default.
        num_proc (`int`, *optional*): processes converting a self-contained repo's row-level columns (its images,
            flat: no record is decoded) into the ``datasets`` cache, once per machine; a metadata-only repo converts
            nothing. The records of both layouts are decoded one row group at a time when first needed
            (:mod:`hf_dr.hub.opening`).
        transform_options: passed to :class:`hf_dr.ReinforcedTransform` (``size``, ``seed``, ``mean``, ``std``,
            ``data_config``, ``leftover``).

    Returns:
        A `datasets.Dataset` whose rows are ``{"pixel_values", "labels"}`` (call ``hf_dr.set_epoch(ds, e)``
        or the transform's ``set_epoch`` every epoch), or with ``streaming=True`` a :class:`ReinforcedIterableDataset`
        of ``{"key", "pixel_values", "labels"}``.

    Example (4 bundled digits pushed as a source repo, reinforced by a random ``test_resnet``, pushed without their
    images; loading joins the recorded source by key, map-style or streamed):
        >>> import tempfile, safetensors.torch, timm
        >>> from hf_dr import load_reinforced, push_to_hub, reinforce
        >>> from hf_dr.data.bundled import load_bundled
        >>> digits, weights = load_bundled("digits").select(range(4)), tempfile.mkdtemp() + "/teacher.safetensors"
        >>> _ = digits.push_to_hub("me/digits")  # the source, as on the Hub
        >>> safetensors.torch.save_file(timm.create_model("test_resnet", num_classes=10).state_dict(), weights)
        >>> teacher = {"arch": "test_resnet", "weights": weights, "input_size": [3, 32, 32]}
        >>> run = reinforce(digits, [teacher], "rrc", num_samples=2, topk=3, seed=0, output_dir=tempfile.mkdtemp(),
        ...                 key_column="key", source={"id": "me/digits", "split": "train"}, progress=False)
        >>> _ = push_to_hub(run, "me/digits-reinforced", layout="metadata-only")
        >>> train = load_reinforced("me/digits-reinforced", size=32)  # loads me/digits at its pinned commit
        >>> train[0]["pixel_values"].shape, train[0]["labels"].shape
        (torch.Size([3, 32, 32]), torch.Size([10]))
        >>> stream = load_reinforced("me/digits-reinforced", size=32, streaming=True)
        >>> stream.set_epoch(1)  # another stored view of every sample
        >>> sorted(next(iter(stream)))
        ['key', 'labels', 'pixel_values']
        >>> load_reinforced("me/digits-reinforced", source=digits.select([0, 1, 3]), size=32)
        Traceback (most recent call last):
        ...
        hf_dr.errors.DataMismatchError: ...
    """
    return open_reinforced(repo_id, split, revision, streaming=streaming, source=source,
                           source_revision=source_revision, verify_source=verify_source, verify_images=verify_images,
                           cache_dir=cache_dir, token=token, num_proc=num_proc, **transform_options)
