"""Options shared by the commands that take ``--builder`` and ``--limit`` (a helper module, not a subcommand).

A builder's values are defaults: a flag given on the command line wins, then the recipe's value, then the command's
own default. Flags that a builder may fill are declared with ``default=None`` so that "not given" can be told apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import datasets

from hf_dr.errors import InvalidConfigError

if TYPE_CHECKING:
    from hf_dr.generate.recipe import Builder


def load_builder(name: str | None) -> Builder | None:
    """The recipe ``name`` from the ``builders`` package, or None without a name."""
    if not name:
        return None
    from builders import get_builder

    return get_builder(name)


def pick(explicit: Any, builder: Builder | None, attribute: str, default: Any = None) -> Any:
    """The flag's value if given, else the builder's ``attribute`` unless it is None, else ``default``.

    Example:
        >>> pick(None, None, "split", "train"), pick("test", None, "split", "train")
        ('train', 'test')
    """
    if explicit is not None:
        return explicit
    value = getattr(builder, attribute) if builder is not None else None
    if value is None:
        return default
    return list(value) if isinstance(value, tuple) else value


def first_rows(dataset: datasets.Dataset, limit: int | None, flag: str = "--limit") -> datasets.Dataset:
    """The first ``limit`` rows of ``dataset`` (all of them for None); a limit beyond its size is refused.

    Example:
        >>> first_rows(datasets.Dataset.from_dict({"x": [1, 2, 3]}), 2)[:]["x"]
        [1, 2]
        >>> first_rows(datasets.Dataset.from_dict({"x": [1, 2, 3]}), 5)
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: --limit 5 exceeds the dataset's 3 rows; pass --limit between 1 and 3 ...
    """
    if limit is None:
        return dataset
    if limit < 1 or limit > len(dataset):
        raise InvalidConfigError(
            f"{flag} {limit} exceeds the dataset's {len(dataset)} rows; pass {flag} between 1 and {len(dataset)} "
            f"(or leave it out to use every row)" if limit > len(dataset) else
            f"{flag} should be a positive number of rows, but got {limit} instead."
        )
    return dataset.select(range(limit))
