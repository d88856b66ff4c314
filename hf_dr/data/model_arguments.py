"""What a model needs to know of reinforced data, read from what the data records: its class count and its input
channels (the image mode the run recorded), so that no recipe retypes them and a grayscale dataset builds a
one-channel student as written."""

from __future__ import annotations

from typing import Any

from hf_dr.data.epochs import transform_of
from hf_dr.data.view_options import mode_channels
from hf_dr.errors import InvalidConfigError

__all__ = ["model_arguments"]

MAX_WRAPPERS = 8  # DataLoader -> timm's dataset wrapper -> Subset -> ...


def model_arguments(data: Any) -> dict[str, int]:
    """``{"num_classes", "in_chans"}`` of reinforced data, for ``timm.create_model(arch, **model_arguments(data))``
    or :func:`hf_dr.create_model`: the classes of its soft labels and the channels of its recorded image mode (``"L"``:
    1, ``"RGB"``: 3; a run without a recorded mode: the channels of the transform's ``data_config``, else 3).

    Args:
        data: a Dataset with a :class:`hf_dr.ReinforcedTransform` set (what :func:`hf_dr.load_reinforced` returns), a
            stream of ``load_reinforced(..., streaming=True)``, a ``torch.utils.data.DataLoader`` or ``Subset`` over
            either (:func:`hf_dr.create_reinforced_loader`'s included), or the transform itself.

    Example:
        >>> import os, tempfile, safetensors.torch, timm
        >>> from hf_dr import ReinforcedTransform, load_run_records, reinforce
        >>> from hf_dr.data.bundled import load_bundled
        >>> folder = tempfile.mkdtemp()
        >>> digits = load_bundled("digits", "train").select(range(6))  # grayscale scans
        >>> weights = os.path.join(folder, "teacher.safetensors")
        >>> gray_teacher = timm.create_model("test_resnet", num_classes=10, in_chans=1)
        >>> safetensors.torch.save_file(gray_teacher.state_dict(), weights)
        >>> teacher = {"arch": "test_resnet", "weights": weights, "input_size": [1, 32, 32]}  # reads gray views
        >>> run = reinforce(digits, [teacher], "rrc", num_samples=2, topk=3, seed=0, key_column="key",
        ...                 output_dir=os.path.join(folder, "run"), num_workers=0, progress=False)
        >>> replay = ReinforcedTransform(load_run_records(run), size=32)
        >>> model_arguments(replay)
        {'num_classes': 10, 'in_chans': 1}
        >>> student = timm.create_model("resnet18", **model_arguments(replay.attach(digits)))
    """
    transform = _replay_of(data)
    if transform.image_mode is not None:
        in_chans = mode_channels(transform.image_mode)
    else:
        in_chans = transform.channels or 3
    return {"num_classes": int(transform.num_classes), "in_chans": int(in_chans)}


def _replay_of(data: Any) -> Any:
    """The :class:`~hf_dr.data.replay.ReinforcedTransform` behind ``data``, through up to :data:`MAX_WRAPPERS`
    ``.dataset`` attributes."""
    from hf_dr.data.replay import ReinforcedTransform

    current = data
    for _ in range(MAX_WRAPPERS):
        if isinstance(current, ReinforcedTransform):
            return current
        found = transform_of(current) or getattr(current, "_replay", None)
        if isinstance(found, ReinforcedTransform):
            return found
        current = getattr(current, "dataset", None)
        if current is None:
            break
    raise InvalidConfigError(
        f"{type(data).__name__} holds no reinforced replay to read the classes and channels from: pass the dataset "
        "hf_dr.load_reinforced returns (or one with hf_dr.ReinforcedTransform attached), its stream, or a DataLoader "
        "over it; for plain data pass num_classes and in_chans yourself.")
