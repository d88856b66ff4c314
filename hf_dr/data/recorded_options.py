"""The options of :class:`hf_dr.ReinforcedTransform` that a run records (:mod:`hf_dr.data.description`): the
columns, the policy and the class count, read from the dataset's description; a given value that contradicts the
recorded one is refused, naming the fields that differ."""

from __future__ import annotations

from typing import Any

import datasets

from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.augment.registry import as_policy, policy_from_config
from hf_dr.data.description import RunDescription, differences
from hf_dr.data.run_columns import RunColumns
from hf_dr.errors import ClassCountMismatchError, InvalidConfigError, ParamsMismatchError

__all__ = ["recorded_columns", "resolve_column", "resolve_num_classes", "resolve_policy"]

_NO_DESCRIPTION = ("this dataset carries no hf-dr run description (made before hf-dr 0.2, or its records column was "
                   "rebuilt)")


def recorded_columns(description: RunDescription | None, dataset: datasets.Dataset) -> dict[str, str]:
    """The image, key and records columns the run recorded (the pre-0.2 defaults without a description)."""
    columns = description.columns if description is not None else RunColumns()
    return {"image": columns.image, "key": columns.key_name, "reinforcements": columns.reinforcements}


def resolve_column(option: str, given: str | None, recorded: str, dataset: datasets.Dataset | None) -> str:
    """The given column, else the recorded one. A given name that differs from a recorded column still present in
    ``dataset`` is a contradiction (a renamed column is not: the recorded name is then gone)."""
    if given is None or given == recorded:
        return recorded
    if dataset is not None and recorded in dataset.column_names:
        raise ParamsMismatchError(
            f"{option}={given!r} contradicts the dataset's recorded column {recorded!r}, which it still has; leave "
            f"{option} out (the dataset describes itself) or rename the column first."
        )
    return given


def resolve_policy(description: RunDescription | None, given: Any) -> AugmentationPolicy:
    """The recorded policy, or ``given`` if it only changes view settings (the crop's interpolation); else refused."""
    if description is None:
        if given is None:
            raise InvalidConfigError(f"the policy is unknown: {_NO_DESCRIPTION}; pass policy= (a name or config).")
        return as_policy(given)
    recorded = policy_from_config(description.policy)
    if given is None:
        return recorded
    given = as_policy(given)
    # like the size, the crop's resize interpolation is a view setting chosen at replay (teachers use their own)
    changed = differences(recorded.with_interpolation(given.crop.interpolation).config(), given.config())
    if changed:
        raise ParamsMismatchError(
            f"policy= contradicts the policy the records were made with ({'; '.join(changed)}): replaying it would "
            "show the student other views than the teacher labelled. Leave policy= out: the dataset carries it."
        )
    return given


def resolve_num_classes(description: RunDescription | None, given: int | None, from_labels: int | None) -> int:
    """The recorded class count (or ``from_labels``, a ``ClassLabel`` column's), ``given`` when it agrees."""
    recorded = description.num_classes if description is not None else from_labels
    if given is not None and recorded is not None and given != recorded:
        raise ClassCountMismatchError(
            f"num_classes={given} contradicts the {recorded} classes the records were made with; leave it out."
        )
    if (given or recorded) is None:
        raise InvalidConfigError(f"num_classes is unknown: {_NO_DESCRIPTION} and no ClassLabel column; pass "
                                 "num_classes=.")
    return int(given or recorded)
