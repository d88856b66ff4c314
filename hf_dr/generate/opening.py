"""Opening a reinforced dataset for training: a run's rows and records joined by key to the images the run was made
from, the images checked against the digests the run stored, and the replay transform built on them.

This is the one join behind every training entry point: :func:`hf_dr.hub.opening.open_reinforced` (a local run
folder, or a pushed repo, map-style), :func:`hf_dr.load_reinforced` and
:func:`hf_dr.train.inputs.training_data`. The images' keys are recomputed as the run made them (its recorded key
source: a key column, the image file's name or a content hash); the source must hold every reinforced key (or, with
``missing="warn"``, at least one: a dataset given to train on a subset), and with ``verify_source`` exactly the
reinforced keys in the recorded order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import datasets

from hf_dr.data.columns import check_columns, image_feature
from hf_dr.data.keys import DIGEST_SAMPLE_SIZE
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.data.source_keys import check_image_digests, keyed, keys_sha256
from hf_dr.data.sources import load_source
from hf_dr.errors import DataMismatchError, InvalidConfigError
from hf_dr.generate.row_groups import RowGroupRecords
from hf_dr.generate.run_config import ReinforceConfig

logger = logging.getLogger(__name__)

MAX_KEYS_SHOWN = 5


def recorded_source(config: ReinforceConfig) -> dict[str, Any]:
    """What a local run recorded of its source, in the form a push records it in ``hf_dr.json`` (``source``): the
    dataset's ``id``, ``revision``, ``split``, ``num_rows`` and ``keys_sha256``, with its ``image_column``, its
    ``key_column`` (None unless keyed by a column) and its ``key_source``."""
    return {**config.dataset, **config.columns.source_view()}


def run_source(config: ReinforceConfig, source: str | datasets.Dataset | None = None, split: str | None = None,
               revision: str | None = None) -> datasets.Dataset:
    """The images a local run was made from: ``source`` (a loaded dataset, or a Hub id or local path loaded at
    ``revision``; the recorded revision for the recorded id) or the dataset the run recorded (id, revision and split
    of ``reinforce_config.json``)."""
    if isinstance(source, datasets.Dataset):
        return source
    recorded = config.dataset
    path = source or recorded.get("id")
    if not path:
        raise InvalidConfigError("the run does not record where its source images are; pass the dataset that was "
                                 "reinforced (source=, --dataset PATH_OR_ID)")
    return load_source(path, split=split or recorded.get("split") or "train",
                       revision=revision or (recorded.get("revision") if path == recorded.get("id") else None))


def reinforced_images(
    images: datasets.Dataset,
    rows: datasets.Dataset,
    recorded: dict[str, Any],
    key_name: str,
    records: RowGroupRecords | None = None,
    verify_source: bool = True,
    verify_images: str = "sample",
    missing: str = "refuse",
    where: str = "the source",
    fix: str | None = None,
    skipped_rows: Sequence[int] = (),
    **transform_options: Any,
) -> tuple[datasets.Dataset, ReinforcedTransform]:
    """``images`` joined by key to a run's ``rows`` (and ``records``), checked, and the replay transform of them.

    Args:
        images (`datasets.Dataset`): the images the run was made from.
        rows (`datasets.Dataset`): the run's rows (key, label, digests; the records too when ``records`` is None).
        recorded (`dict`): the recorded source (``hf_dr.json``'s ``source``, or :func:`recorded_source`):
            ``image_column``, ``key_column``, ``key_source``, and ``id``, ``revision``, ``keys_sha256`` when known.
        key_name (`str`): the key column of ``rows``; computed keys are added to ``images`` under this name.
        records (`RowGroupRecords`, *optional*): the records of ``rows``, read by row group when first needed.
        verify_source (`bool`, *optional*, defaults to True): refuse extra rows and another order (see
            :func:`check_source_keys`); with False extra rows are dropped.
        verify_images (`str`, *optional*, defaults to ``"sample"``): ``"sample"``, ``"full"`` or ``"off"`` (see
            :func:`hf_dr.load_reinforced`).
        missing (`str`, *optional*, defaults to ``"refuse"``): reinforced keys ``images`` lacks: ``"refuse"``, or
            ``"warn"`` (a dataset given to train on: its reinforced rows are trained on, a warning names the count).
        where (`str`, *optional*, defaults to ``"the source"``): ``images`` in messages.
        fix (`str`, *optional*): how to fix a changed image, for its message; :func:`changed_fix` by default.
        skipped_rows (`Sequence[int]`, *optional*): rows of the source the run skipped (undecodable images, listed
            in its manifest): left out, not taken for extra rows.
        transform_options: passed to :class:`~hf_dr.ReinforcedTransform`.

    Returns:
        The reinforced rows of ``images`` (with a key column) and their :class:`~hf_dr.ReinforcedTransform`, not yet
        attached.
    """
    image_column = recorded["image_column"]
    check_source_columns(images, recorded)
    image_feature(images, image_column)
    images, keys = keyed(images, image_column, recorded["key_column"], recorded["key_source"], key_name)
    reinforced_keys = rows.data.column(key_name).to_pylist()
    if missing == "refuse":
        keep = check_source_keys(keys, reinforced_keys, recorded, verify_source, skipped_rows)
    else:
        keep = _present_keys(keys, reinforced_keys, where)
    check_image_digests(images, image_column, keys, rows, key_name, verify_images, where,
                        fix or changed_fix(recorded))
    images = images.select(keep) if keep is not None else images
    transform = ReinforcedTransform(rows, images=images, image_column=image_column, key_column=key_name,
                                    verify_images=verify_images, records=records, **transform_options)
    return images, transform


def check_source_columns(images: datasets.Dataset | datasets.IterableDataset, recorded: dict[str, Any]) -> None:
    """Refuses a source without the image column, or the key column of a run keyed by one, the run read."""
    key_column = recorded["key_column"] if recorded["key_source"] == "column" else None
    fix = (f"The run read these columns: load {recorded_version(recorded)}, or pass source= with the dataset that "
           "was reinforced.")
    check_columns(images, role="source", fix=fix, image_column=recorded["image_column"], key_column=key_column)


def recorded_version(recorded: dict[str, Any]) -> str:
    """The recorded source, for messages."""
    return f"the recorded version ({recorded.get('id')} at revision {recorded.get('revision')})"


def changed_fix(recorded: dict[str, Any]) -> str:
    """How to fix a source image that changed under its key, for messages."""
    return (f"Load {recorded_version(recorded)}, or pass source= with the dataset that was reinforced "
            f"(verify_images='sample' reads {DIGEST_SAMPLE_SIZE} random rows up front and every row when it is first "
            "replayed, verify_images='full' every row up front; verify_images='off' accepts changed images).")


def check_source_keys(keys: Sequence[str], reinforced_keys: Sequence[str], recorded: dict[str, Any],
                      verify_source: bool = True, skipped_rows: Sequence[int] = ()) -> list[int] | None:
    """Checks a source's keys against the reinforced ones; returns the rows to keep (None: all).

    Missing keys are always refused (:class:`DataMismatchError` naming a few and their count). Extra rows and a
    different order are refused when ``verify_source``: the source is then not the version that was reinforced. The
    rows the run skipped (``skipped_rows``, their images undecodable) hold no records: they are left out, not extra.

    Example:
        >>> recorded = {"id": "me/src", "revision": "abc", "num_rows": 2, "keys_sha256": keys_sha256(["a", "b"])}
        >>> check_source_keys(["b", "a"], ["a", "b"], recorded, verify_source=False) is None
        True
        >>> check_source_keys(["a"], ["a", "b"], recorded)
        Traceback (most recent call last):
        ...
        hf_dr.errors.DataMismatchError: the source lacks 1 of the 2 reinforced keys (first: ['b'])...
    """
    present = set(keys)
    missing = [key for key in reinforced_keys if key not in present]
    where = recorded_version(recorded)
    if missing:
        raise DataMismatchError(
            f"the source lacks {len(missing)} of the {len(reinforced_keys)} reinforced keys (first: "
            f"{missing[:MAX_KEYS_SHOWN]}): it lost rows or is another version. Load {where}, or pass source= with the "
            "dataset that was reinforced."
        )
    reinforced_set, skipped = set(reinforced_keys), frozenset(int(row) for row in skipped_rows)
    unreinforced = [row for row, key in enumerate(keys) if key not in reinforced_set]
    extra = [row for row in unreinforced if row not in skipped]
    if extra and verify_source:
        raise DataMismatchError(
            f"the source has {len(extra)} rows that were not reinforced (first keys: "
            f"{[keys[row] for row in extra[:MAX_KEYS_SHOWN]]}): it is not {where}, or the run reinforced only some "
            "of its rows (--limit). Load that version, or pass verify_source=False to train on the reinforced rows "
            "only."
        )
    if verify_source and recorded.get("keys_sha256") and keys_sha256(keys) != recorded["keys_sha256"]:
        raise DataMismatchError(
            f"the source holds the reinforced keys in another order than the run read (SHA-256 of its keys "
            f"{keys_sha256(keys)[:12]}..., recorded {recorded['keys_sha256'][:12]}...): it is not {where}. Rows are "
            "joined by key, so training stays correct: pass verify_source=False to accept the new order, or load the "
            "recorded version."
        )
    return [row for row, key in enumerate(keys) if key in reinforced_set] if unreinforced else None


def _present_keys(keys: Sequence[str], reinforced_keys: Sequence[str], where: str) -> list[int] | None:
    """The rows of ``keys`` that were reinforced (None: all), for a dataset given to train on: reinforced keys it lacks
    are trained without (a warning names their count); none at all is refused."""
    reinforced = set(reinforced_keys)
    rows = [row for row, key in enumerate(keys) if key in reinforced]
    if not rows:
        raise DataMismatchError(f"no row of {where} has a key of the reinforcement run (e.g. {list(keys[:2])} vs "
                                f"{sorted(reinforced)[:2]}); load the dataset that was reinforced")
    if len(rows) < len(keys):
        logger.info("training on the %d of %d rows that were reinforced", len(rows), len(keys))
    if len(rows) < len(reinforced):
        logger.warning("%d reinforced keys are not in %s", len(reinforced) - len(rows), where)
    return rows if len(rows) < len(keys) else None
