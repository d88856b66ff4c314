"""The source dataset of a reinforcement run, loaded: a Hub id, a local folder or file, a bundled dataset, or a
``save_to_disk`` folder (:func:`load_source`), and its split name checked. Its columns are checked in
:mod:`hf_dr.data.columns`; its keys, sizes and image digests are read in :mod:`hf_dr.data.source_keys`.
"""

from __future__ import annotations

import os
import re
from typing import Any

import datasets

from hf_dr.data.bundled import bundled_name, load_bundled
from hf_dr.errors import InvalidConfigError, SourceNotFoundError


def load_source(
    path: str, split: str = "train", name: str | None = None, revision: str | None = None,
    data_root: str | None = None,
) -> datasets.Dataset:
    """Loads one split from a Hub id, a local folder (imagefolder, Parquet, ``save_to_disk``), a Parquet file or a
    bundled dataset's name (``fashion-mnist``, ``digits``, ``shapes``: :mod:`hf_dr.data.bundled`; a local folder of
    that name wins; ``data_root`` is Fashion-MNIST's folder of idx files).

    A missing path that looks local (starts with ``/``, ``.`` or ``~``, or has more separators than ``org/name``) is
    refused as such; anything else that is not on disk is looked up on the Hub, and :class:`SourceNotFoundError`
    says that both were tried.

    Example (a bundled dataset, and a local image folder of two classes):
        >>> import os, tempfile
        >>> from PIL import Image
        >>> load_source("digits", split="test").num_rows
        500
        >>> folder = tempfile.mkdtemp()
        >>> for label in ("cat", "dog"):
        ...     os.makedirs(os.path.join(folder, "train", label))
        ...     Image.new("RGB", (8, 8)).save(os.path.join(folder, "train", label, "0.png"))
        >>> ds = load_source(folder, split="train")
        >>> ds.num_rows, ds.features["label"].names
        (2, ['cat', 'dog'])
    """
    check_split(split)
    path = os.path.expanduser(path)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "state.json")):
        return datasets.load_from_disk(path)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "dataset_dict.json")):
        return datasets.load_from_disk(path)[split]
    if os.path.isfile(path):
        builder = "parquet" if path.endswith(".parquet") else os.path.splitext(path)[1].lstrip(".")
        return datasets.load_dataset(builder, data_files={split: path}, split=split)
    if not os.path.exists(path) and bundled_name(path) is not None:
        return load_bundled(path, split, data_root)
    if os.path.isdir(path) or not looks_local(path):
        return _load_dataset(path, name, split, revision)
    raise SourceNotFoundError(
        f"the dataset {path!r} does not exist: no file or folder {os.path.abspath(path)!r}. Check the path "
        "(--dataset), or pass a Hub dataset id (org/name)."
    )


_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def check_split(split: str) -> str:
    """``split`` if it is a plain split name (letters, digits, ``_``, ``-`` and ``.``, not leading), else
    :class:`InvalidConfigError`: a split name becomes part of file names (a push's ``data/{split}-*.parquet``) and
    is recorded with the run, so a path such as ``../x`` is refused where it enters.

    Example:
        >>> check_split("validation")
        'validation'
        >>> check_split("../../outside/evil")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: split '../../outside/evil' is not a split name: ...
    """
    if not isinstance(split, str) or not _SPLIT_NAME.fullmatch(split) or ".." in split:
        raise InvalidConfigError(
            f"split {split!r} is not a split name: use letters, digits, '_', '-' and '.' (not first), without '/' or "
            "'..', e.g. --split train or --split validation."
        )
    return split


def looks_local(path: str) -> bool:
    """Whether ``path`` is written as a local path (``/``, ``.`` or ``~`` first, or more separators than
    ``org/name``) rather than a Hub id."""
    return path.startswith((".", "~", os.sep)) or path.count("/") > 1 or bool(os.altsep and os.altsep in path)


def _load_dataset(path: str, name: str | None, split: str, revision: str | None) -> datasets.Dataset:
    """``datasets.load_dataset`` of a local folder or a Hub id; for an id the Hub lacks or that cannot be reached,
    :class:`SourceNotFoundError` saying that neither a local path nor the Hub has it."""
    from huggingface_hub.errors import HFValidationError

    try:
        return datasets.load_dataset(path, name, split=split, revision=revision)
    except (FileNotFoundError, ConnectionError, HFValidationError) as err:  # DatasetNotFoundError is one
        if os.path.exists(path):
            raise
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise SourceNotFoundError(
            f"the dataset {path!r} is neither a local file or folder (no {os.path.abspath(path)!r}) nor a dataset "
            f"loadable from the Hub ({reason}). Check the spelling and path (--dataset), and for a Hub id your "
            "network and login (`hf auth login`) if the dataset is private or gated."
        ) from err


def source_info(dataset: datasets.Dataset, path: str | None = None, split: str | None = None,
                revision: str | None = None) -> dict[str, Any]:
    """Where the rows came from: id or path, split, revision and the ``datasets`` fingerprint."""
    return {"id": path, "split": split, "revision": revision, "fingerprint": dataset._fingerprint}
