""":class:`RunColumns`: the columns of a reinforcement run and their roles, one typed record that every reader and
writer of a run uses. The column defaults and the key-source rule live here and nowhere else.

A run records its columns in three views, all read by :meth:`RunColumns.from_dict` (old runs included):

- ``reinforce_config.json``'s ``columns`` (:meth:`RunColumns.to_dict`): ``image``, ``label``, ``key`` (the source's key
  column, None for computed keys) and ``key_source``, absent from configs written before key sources existed (then
  ``"column"`` with a key column, else ``"content"``; such a config is written back without it, so its fingerprint
  stays its own);
- the data's description (:mod:`hf_dr.data.description`, :meth:`RunColumns.description_view`): the same, with
  ``key`` naming the reinforcement table's key column and ``reinforcements`` its records column;
- ``hf_dr.json``'s ``source`` of a pushed dataset (:meth:`RunColumns.source_view`): ``image_column``,
  ``label_column``, ``key_column``, ``key_source``. (Its ``columns``, :meth:`RunColumns.pushed_view`, name the pushed
  table's columns and are not read back.)

This module imports only the standard library and :mod:`hf_dr.errors`, so that ``hf-dr reinforce --help`` can read
its defaults.

Example:
    >>> columns = RunColumns(key="id")
    >>> columns.key_source, columns.key_name, columns.to_dict()
    ('column', 'id', {'image': 'image', 'label': 'label', 'key': 'id', 'key_source': 'column'})
    >>> RunColumns.from_dict({"image": "img", "label": None, "key": None}).key_name  # a config of an old run
    'key'
    >>> RunColumns.from_dict(RunColumns(key_source="path").description_view()) == RunColumns(key_source="path")
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from hf_dr.errors import InvalidConfigError

IMAGE_COLUMN = "image"  # the source's image column by default
LABEL_COLUMN = "label"  # the source's label column by default
KEY_COLUMN = "key"  # the reinforcement table's key column when the keys are computed (content or path)
REINFORCEMENTS_COLUMN = "reinforcements"  # the reinforcement table's records column
KEY_SOURCES = ("column", "content", "path")


def resolve_key_source(key_column: str | None = None, key_from: str | None = None) -> str:
    """The key source (one of :data:`KEY_SOURCES`) of ``key_column=`` and ``key_from=``; a conflict is refused.

    ``key_from=None`` means ``"column"`` with a key column and ``"content"`` without one (what runs recorded before
    ``key_source`` existed).

    Example:
        >>> resolve_key_source("id"), resolve_key_source(None), resolve_key_source(None, "path")
        ('column', 'content', 'path')
    """
    if key_from is None:
        return "column" if key_column is not None else "content"
    if key_from not in KEY_SOURCES:
        raise InvalidConfigError(f"key_from should be one of {list(KEY_SOURCES)}, but got {key_from!r} instead.")
    if key_from == "column" and key_column is None:
        raise InvalidConfigError("key_from='column' needs key_column= (--key-column), the column holding the keys.")
    if key_from != "column" and key_column is not None:
        raise InvalidConfigError(
            f"pass either key_column= (--key-column {key_column}) or key_from={key_from!r} (--key-from {key_from}), "
            "not both: they are two ways of keying the rows."
        )
    return key_from


@dataclass(frozen=True)
class RunColumns:
    """The columns a run read and wrote, and how its rows are keyed.

    Args:
        image (`str`, *optional*, defaults to ``"image"``): the source's image column.
        label (`str`, *optional*, defaults to ``"label"``): the source's label column; None for unlabelled data.
        key (`str`, *optional*): the source's key column; None when the keys are computed from the image.
        key_source (`str`, *optional*): ``"column"``, ``"content"`` (a hash of the image bytes) or ``"path"`` (the
            image file's name; :mod:`hf_dr.data.keys`); by default ``"column"`` with ``key``, else ``"content"``.
        reinforcements (`str`, *optional*, defaults to ``"reinforcements"``): the reinforcement table's records column.
        key_source_recorded (`bool`, *optional*, defaults to True): False for a config written before key sources
            were recorded: :meth:`to_dict` then writes it as it was (its fingerprint is unchanged).
    """

    image: str = IMAGE_COLUMN
    label: str | None = LABEL_COLUMN
    key: str | None = None
    key_source: str | None = None
    reinforcements: str = REINFORCEMENTS_COLUMN
    key_source_recorded: bool = field(default=True, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_source", resolve_key_source(self.key, self.key_source))

    @property
    def key_name(self) -> str:
        """The reinforcement table's key column: the source's key column, else :data:`KEY_COLUMN`."""
        return self.key if self.key is not None else KEY_COLUMN

    @property
    def by_content(self) -> bool:
        """Whether the keys are hashes of the image bytes (such runs store no separate image digests)."""
        return self.key_source == "content"

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> RunColumns:
        """The columns of any recorded view (see the module docstring); missing entries take their defaults."""
        values = dict(values or {})
        if "image_column" in values:  # hf_dr.json's source reference
            values = {"image": values.get("image_column"), "label": values.get("label_column"),
                      "key": values.get("key_column"), "key_source": values.get("key_source")}
        elif "reinforcements" in values and values.get("key_source") not in (None, "column"):
            values["key"] = None  # a description names the table's key column, which computed keys fill
        known = {f.name for f in fields(cls)} - {"key_source_recorded"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidConfigError(f"unknown run columns {unknown} in {values}; the roles are {sorted(known)}")
        defaults = {"image": IMAGE_COLUMN, "reinforcements": REINFORCEMENTS_COLUMN}
        given = {name: value if value is not None or name not in defaults else defaults[name]
                 for name, value in values.items()}
        return cls(**given, key_source_recorded="key_source" in values)

    def to_dict(self) -> dict[str, Any]:
        """``reinforce_config.json``'s ``columns``."""
        values = {"image": self.image, "label": self.label, "key": self.key, "key_source": self.key_source}
        if not self.key_source_recorded:
            del values["key_source"]
        return values

    def description_view(self) -> dict[str, Any]:
        """The data's description's ``columns``: the table's key column under ``key``, and the records column."""
        return {"image": self.image, "label": self.label, "key": self.key_name, "key_source": self.key_source,
                "reinforcements": self.reinforcements}

    def pushed_view(self, with_image: bool) -> dict[str, Any]:
        """``hf_dr.json``'s ``columns``: the pushed table's columns (``image`` None ``with_image=False``: the
        metadata-only layout's images stay in the source)."""
        return {"image": self.image if with_image else None, "label": self.label, "key": self.key_name,
                "reinforcements": self.reinforcements}

    def source_view(self) -> dict[str, Any]:
        """``hf_dr.json``'s column fields of the source: ``image_column``, ``label_column``, ``key_column``,
        ``key_source``."""
        return {"image_column": self.image, "label_column": self.label, "key_column": self.key,
                "key_source": self.key_source}
