""":class:`ReinforceSettings`: everything a call of :func:`hf_dr.reinforce` is asked to do, as one object, and the one
home of its defaults. ``hf-dr reinforce`` builds it from its flags (whose defaults it reads), a recipe
(:class:`hf_dr.generate.builder.Builder`) fills it, and ``reinforce`` builds it from its keyword arguments.

What the run then records (with the teacher, the rows and the library versions) is its
:class:`~hf_dr.generate.run_config.ReinforceConfig`. This module imports neither torch nor datasets, so that
``hf-dr reinforce --help`` can show the defaults.

Example:
    >>> settings = ReinforceSettings(policy="rrc", num_samples=4, topk=3, output_dir="run", key_column="id")
    >>> settings.columns.key_source, settings.shard_size
    ('column', 1000)
    >>> ReinforceSettings().num_samples, ReinforceSettings().policy
    (10, 'rrc+ra_re')
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from hf_dr.augment.defaults import DEFAULT_POLICY
from hf_dr.data.run_columns import IMAGE_COLUMN, LABEL_COLUMN, RunColumns
from hf_dr.errors import InvalidConfigError

if TYPE_CHECKING:
    from hf_dr.augment.policy import AugmentationPolicy
    from hf_dr.data.codec import RecordCodec

NUMBERS = {"num_samples": 1, "topk": 1, "seed": 0, "shard_size": 1, "batch_size": 1, "num_workers": 0}  # lowest


@dataclass(frozen=True)
class ReinforceSettings:
    """The settings of one :func:`hf_dr.reinforce` call (see the module docstring).

    Args:
        policy (`str`, `dict` or `AugmentationPolicy`, *optional*, defaults to ``"rrc+ra_re"``): a policy name, config
            or object.
        num_samples (`int`, *optional*, defaults to 10): N, augmentations stored per image.
        topk (`int`, *optional*, defaults to 10): k, teacher probabilities stored per augmentation.
        seed (`int`, *optional*, defaults to 0): seed of every draw, with the sample key and the augmentation index.
        output_dir (`str`): where the shards, ``manifest.json`` and ``reinforce_config.json`` go (required).
        image_column, label_column, key_column (`str`, *optional*): column names (``"image"``, ``"label"``, none);
            ``label_column=None`` for unlabelled data; without ``key_column`` the key is a hash of the image bytes
            (or see ``key_from``).
        key_from (`str`, *optional*): ``"path"`` or ``"content"``: how rows without a key column are keyed.
        image_mode (`str`, *optional*): ``"RGB"`` or ``"L"``; by default the teacher's.
        on_bad_image (`str`, *optional*, defaults to ``"raise"``): ``"raise"`` or ``"skip"``.
        codec (`RecordCodec` or `dict`, *optional*): how records are stored; stored params and fp16 top-k by default.
        shard_size (`int`, *optional*, defaults to 1000): rows per shard (the unit of resume).
        batch_size (`int`, *optional*, defaults to 128): views per teacher forward.
        num_workers (`int`, *optional*): DataLoader workers; by default 0 on CPU, else half the cores (at most 8).
        precision (`str`, *optional*, defaults to ``"fp32"``): ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast.
        channels_last (`bool`, *optional*, defaults to False): channels-last teacher.
        overwrite (`bool`, *optional*, defaults to False): delete a previous run's files in ``output_dir`` first.
        source (`dict`, *optional*): provenance of the dataset (``id``, ``split``, ``revision``) for the config.
        progress (`bool`, *optional*, defaults to True): progress bar on the main process.

    :func:`hf_dr.reinforce` documents each setting in full.

    Example:
        >>> import os, tempfile, safetensors.torch, timm
        >>> from hf_dr import ReinforceSettings, load_run_records, reinforce
        >>> from hf_dr.data.bundled import load_bundled
        >>> folder = tempfile.mkdtemp()
        >>> weights = os.path.join(folder, "teacher.safetensors")
        >>> safetensors.torch.save_file(timm.create_model("test_resnet", num_classes=10).state_dict(), weights)
        >>> settings = ReinforceSettings(policy="rrc", num_samples=2, topk=3, key_column="key", num_workers=0,
        ...                              output_dir=os.path.join(folder, "run"), progress=False)
        >>> run = reinforce(load_bundled("digits", "train").select(range(4)),
        ...                 [{"arch": "test_resnet", "weights": weights, "input_size": [3, 32, 32]}], config=settings)
        >>> len(load_run_records(run)), len(load_run_records(run)[0]["reinforcements"])
        (4, 2)
    """

    policy: str | dict[str, Any] | AugmentationPolicy = DEFAULT_POLICY
    num_samples: int = 10
    topk: int = 10
    seed: int = 0
    output_dir: str | None = None
    image_column: str = IMAGE_COLUMN
    label_column: str | None = LABEL_COLUMN
    key_column: str | None = None
    key_from: str | None = None
    image_mode: str | None = None
    on_bad_image: str = "raise"
    codec: RecordCodec | dict[str, Any] | None = None
    shard_size: int = 1000
    batch_size: int = 128
    num_workers: int | None = None
    precision: str = "fp32"
    channels_last: bool = False
    overwrite: bool = False
    source: dict[str, Any] | None = None
    progress: bool = True

    @classmethod
    def of(cls, settings: ReinforceSettings | None = None, **given: Any) -> ReinforceSettings:
        """``settings`` (or the defaults) with the ``given`` settings replaced; an unknown name is refused, naming the
        settings there are.

        Example:
            >>> ReinforceSettings.of(ReinforceSettings(topk=3), seed=1).seed
            1
        """
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise InvalidConfigError(f"reinforce() got unknown settings {unknown}; the settings are "
                                     f"{[f.name for f in fields(cls)]} (hf_dr.ReinforceSettings).")
        if settings is not None and not isinstance(settings, cls):
            raise InvalidConfigError(f"config= should be a ReinforceSettings, but got {type(settings).__name__}.")
        return replace(settings or cls(), **given)

    @property
    def columns(self) -> RunColumns:
        """The run's columns (:class:`~hf_dr.data.run_columns.RunColumns`); a key column with another ``key_from``
        is refused."""
        return RunColumns(self.image_column, self.label_column, self.key_column, self.key_from)

    def check(self) -> None:
        """The numbers and the output folder, checked before the folder is touched: a mistake leaves nothing there
        that would refuse the corrected rerun."""
        if not self.output_dir:
            raise InvalidConfigError("output_dir (--output-dir) is required: the folder the run writes.")
        for name, low in NUMBERS.items():
            value = getattr(self, name)
            if name == "num_workers" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidConfigError(f"{name} (--{name.replace('_', '-')}) should be an integer >= {low}, but "
                                         f"got {value!r} instead.")
