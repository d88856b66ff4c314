"""Rendering the augmented views a teacher labels, in DataLoader workers.

A worker renders one chunk of the plan (:mod:`hf_dr.generate.plan`): it decodes each image once, draws the params
of each view from ``generator_for(seed, key, index)``, applies them at every teacher view size and converts the
params to Arrow. Chunks are padded to ``batch_size`` so the teacher always runs on one batch shape; the draws depend
only on (seed, key, index), so the output does not depend on the number of processes or workers.

Every decoded image is converted to the run's image mode (:func:`hf_dr.augment.functional.convert_mode`), as the
replay converts it. An image that cannot be decoded raises :class:`CorruptImageError` naming its row, key, file and
dataset, or with ``on_bad_image="skip"`` its row is reported (``item["skipped"]``) and gets no records: its slots are
rendered black and dropped (:func:`without_records`), and a view whose drawn mixing partner is such an image is
stored unmixed. Whether an image decodes depends on its bytes only, so skipping keeps the output independent of the
number of processes and workers.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from PIL import Image

from hf_dr.augment.functional import MODE_CHANNELS, WIDE_MODES, check_image_mode, to_pil
from hf_dr.augment.ops import PartnerPool
from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.augment.seeding import generator_for
from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec
from hf_dr.data.keys import KeyIndex
from hf_dr.data.scan_cache import cached_scan
from hf_dr.data.schema import REINFORCEMENTS_COLUMN
from hf_dr.data.source_keys import header_size
from hf_dr.errors import CorruptImageError, InvalidConfigError
from hf_dr.generate.plan import Chunk
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.models.teacher import MemberSpec, Teacher, ViewSpec

TENSOR_INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")
BAD_IMAGE_CHOICES = ("raise", "skip")
# what Pillow raises for undecodable bytes (OSError covers truncated files and unidentified formats)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)
SKIP_FIX = ("pass on_bad_image='skip' (--on-bad-image skip) to reinforce the other rows: skipped rows get no records "
            "and are listed with their error under 'skipped' in the run's manifest.json")


def policy_for_view(policy: AugmentationPolicy, interpolation: str) -> AugmentationPolicy:
    """``policy`` with its crop resized by ``interpolation`` (a teacher member's own,
    :meth:`AugmentationPolicy.with_interpolation`), refused unless it has a tensor kernel."""
    if interpolation not in TENSOR_INTERPOLATIONS:
        raise InvalidConfigError(
            f"teacher interpolation {interpolation!r} has no tensor kernel; set the member's interpolation to one "
            f"of {list(TENSOR_INTERPOLATIONS)} (teacher spec field 'interpolation')"
        )
    return policy.with_interpolation(interpolation)


class ViewRenderer(torch.utils.data.Dataset):
    """Item ``i`` is chunk ``i`` rendered: ``{"chunk": i, "views": [uint8 [B, C, H, W] per view spec],
    "params": pyarrow.StructArray of the encoded params, one per view}``.

    Args:
        images (`datasets.Dataset`): one image column with decoding off (see
            :func:`hf_dr.data.columns.encoded_images`).
        image_feature (`datasets.Image`): the feature that decodes a cell (so decoding matches ``datasets``).
        keys (`Sequence[str]`): every row's key.
        chunks (`ChunkPlan`): the work, in order.
        policy (`AugmentationPolicy`): the augmentation policy.
        views (`Sequence[ViewSpec]`): the teacher's distinct views.
        seed (`int`): the run seed.
        batch_size (`int`): chunks are padded to this many views.
        partners (`PartnerPool`, *optional*): every key and image size, for mixing policies.
        image_mode (`str`, *optional*): the run's image mode ("RGB" or "L"); None keeps :func:`to_pil`'s default.
        on_bad_image (`str`, *optional*, defaults to ``"raise"``): ``"raise"`` or ``"skip"`` (module docstring).
        source (`str`, *optional*, defaults to ``"the dataset"``): the dataset's name in error messages.
        param_mode (`str`, *optional*, defaults to ``"stored"``): ``"seeded"`` keeps only each view's checksum (and
            mixing partner) of its params (:mod:`hf_dr.augment.seeded`).
    """

    def __init__(
        self,
        images: datasets.Dataset,
        image_feature: datasets.Image,
        keys: Sequence[str],
        chunks: Sequence[Chunk],
        policy: AugmentationPolicy,
        views: Sequence[ViewSpec],
        seed: int,
        batch_size: int,
        partners: PartnerPool | None = None,
        image_mode: str | None = None,
        on_bad_image: str = "raise",
        source: str = "the dataset",
        param_mode: str = "stored",
    ) -> None:
        self.image_mode, self.on_bad_image, self.source = check_image_mode(image_mode), on_bad_image, source
        check_bad_image_choice(on_bad_image)
        self.images, self.image_feature, self.keys = images, image_feature, keys
        self.column = images.column_names[0]
        # the plan itself, not a list of it: a ChunkPlan computes chunks on demand (ImageNet+: 4M chunks, 0.7 GB as
        # a list, copied into every DataLoader worker)
        self.chunks, self.policy, self.views = chunks, policy, list(views)
        self.view_policies = [policy_for_view(policy, v.interpolation) for v in self.views]
        self.seed, self.batch_size, self.partners = int(seed), int(batch_size), partners
        self.codec = RecordCodec(params=param_mode)  # the params are coded here, the labels after the teacher
        self.params_type = datasets.Features({"params": self.codec.params_features(policy)}).arrow_schema.field(
            "params").type
        self._partner_rows = None if partners is None else KeyIndex(  # made once, shared with the workers
            keys, where="the reinforced dataset", fix="mixing partners must be drawn from the dataset's own keys.")

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict[str, Any]:
        chunk = self.chunks[i]
        # NumPy buffers: copying Pillow's HWC pixels into CHW is single-threaded and fast in NumPy, while torch may
        # hand the small strided copy to OpenMP threads (slow on a busy CPU, and in the main process with 0 workers)
        batches = [np.zeros((self.batch_size, v.channels, v.height, v.width), dtype=np.uint8) for v in self.views]
        cache: dict[int, Image.Image | None] = {}
        errors: dict[int, str] = {}
        params_out = []
        for slot, (row, index) in enumerate(chunk.views()):
            image = self._image(row, cache, errors)
            if image is None:  # skipped: the slot stays black, its record is dropped
                params_out.append(None)
                continue
            generator = generator_for(self.seed, self.keys[row], index)
            params = self.policy.sample_params((image.height, image.width), generator, self.partners)
            partner = self._partner(params, cache, errors)
            for batch, spec, policy in zip(batches, self.views, self.view_policies, strict=True):
                batch[slot] = render_view(policy, image, params, spec, partner).numpy()
            params_out.append(self.codec.encode_params(self.policy, params))
        views = [torch.from_numpy(batch) for batch in batches]
        skipped = {row: errors[row] for row, _ in chunk.views() if row in errors}  # the chunk's own rows only
        return {"chunk": i, "views": views, "params": pa.array(params_out, type=self.params_type),
                "skipped": skipped}

    def _image(self, row: int, cache: dict[int, Image.Image | None], errors: dict[int, str]) -> Image.Image | None:
        """Row ``row``'s image in the run's mode; None for an image skipped as undecodable."""
        if row not in cache:
            cell = self.images[row][self.column]
            try:
                cache[row] = decode_image(self.image_feature, cell, self.image_mode)
            except InvalidConfigError as err:  # the column's feature, not the image: never skipped
                raise InvalidConfigError(f"{describe_row(row, self.keys[row], cell, self.source)}: {err}") from err
            except DECODE_ERRORS as err:
                where = describe_row(row, self.keys[row], cell, self.source)
                if self.on_bad_image == "raise":
                    raise CorruptImageError(f"cannot decode the image of {where}: {error_text(err)}. Repair or "
                                            f"remove that row, or {SKIP_FIX}.") from err
                cache[row], errors[row] = None, error_text(err)
        return cache[row]

    def _partner(self, params: dict[str, Any], cache: dict[int, Image.Image | None], errors: dict[int, str]
                 ) -> Image.Image | None:
        """The partner image of ``params``; a skipped partner turns ``params`` into an unmixed record (in place)."""
        key = self.policy.partner_key(params)
        if key is None:
            return None
        partner = self._image(self._partner_rows.row(key), cache, errors)
        if partner is None:
            self.policy.unmix(params)
        return partner


def check_bad_image_choice(on_bad_image: str) -> str:
    """``on_bad_image`` if it is one of :data:`BAD_IMAGE_CHOICES`, else :class:`InvalidConfigError`."""
    if on_bad_image not in BAD_IMAGE_CHOICES:
        raise InvalidConfigError(
            f"on_bad_image should be one of {list(BAD_IMAGE_CHOICES)}, but got {on_bad_image!r} instead.")
    return on_bad_image


def decode_image(feature: datasets.Image, cell: Any, image_mode: str | None = None) -> Image.Image:
    """An encoded cell decoded as ``datasets`` decodes it (``feature``), fully loaded and in ``image_mode``.

    A feature with a ``mode`` converts with Pillow, which clips 16-bit and other wide images to 8 bits (most turn
    white): such an image is refused with :class:`InvalidConfigError` rather than reinforced white.
    """
    image = datasets.Image().decode_example(_nonempty(cell))  # as the feature decodes, before its mode conversion
    if feature.mode and feature.mode != image.mode:
        if image.mode in WIDE_MODES:
            raise InvalidConfigError(
                f"the column's feature datasets.Image(mode={feature.mode!r}) converts this {image.mode!r} image with "
                "Pillow, which clips it to 8 bits (16-bit photos turn white); cast the column to datasets.Image() "
                "(dataset.cast_column(column, datasets.Image())) and let image_mode convert it")
        image = image.convert(feature.mode)
    return to_pil(image, image_mode)


def error_text(err: BaseException) -> str:
    """``"OSError: image file is truncated"``: the error's type and message, without the memory addresses Pillow
    puts in some (``<_io.BytesIO object at 0x7f...>``), so the text recorded for a row is the same in every run."""
    return f"{type(err).__name__}: {re.sub(r' at 0x[0-9a-fA-F]+', '', str(err))}"


def describe_row(row: int, key: str, cell: Any, source: str) -> str:
    """``row 7 (key 'a', file 'a.jpg') of <source>``, for error messages."""
    path = cell.get("path") if isinstance(cell, dict) else None
    return f"row {row} (key {key!r}{f', file {path!r}' if path else ''}) of {source}"


def describe_source(info: dict[str, Any]) -> str:
    """A run's dataset in words, from its recorded ``dataset`` info: ``dataset 'x' (split 'train')``."""
    ident, split = info.get("id"), info.get("split")
    name = f"dataset {ident!r}" if ident else f"the dataset being reinforced (fingerprint {info.get('fingerprint')!r})"
    return f"{name}{f' (split {split!r})' if split else ''}"


def partner_sizes(images: datasets.Dataset, keys: Sequence[str], on_bad_image: str = "raise",
                  source: str = "the dataset") -> ImageSizes:
    """Every row's image ``(height, width)`` from its file header, for a mixing policy's partner draws; read once per
    dataset version (:func:`hf_dr.data.scan_cache.cached_scan`).

    An unreadable header raises :class:`CorruptImageError` naming the row, or with ``on_bad_image="skip"`` gives
    ``(1, 1)``: such a partner is never mixed in (the view is stored unmixed, see :class:`ViewRenderer`).
    """
    column = images.column_names[0]
    sizes = cached_scan(images, f"sizes-{column}", lambda: _header_sizes(images),
                        lambda rows: _header_sizes(images.select(rows)), pa.list_(pa.int32(), 2), image_column=column)
    found = np.asarray(sizes, dtype=np.int32).reshape(-1, 2)
    for row in np.flatnonzero((found == 0).all(axis=1)).tolist():  # unreadable: the error again, from the header
        cell = images[row][column]
        try:
            header_size(_nonempty(cell))
        except DECODE_ERRORS as err:
            if on_bad_image == "raise":
                raise CorruptImageError(
                    f"cannot read the image header of {describe_row(row, keys[row], cell, source)}: "
                    f"{error_text(err)}. Repair or remove that row, or {SKIP_FIX}.") from err
        found[row] = (1, 1)
    return ImageSizes(found)


class ImageSizes(Sequence[tuple[int, int]]):
    """Every row's ``(height, width)`` as one ``int32`` array (ImageNet: 10 MB, not 1.28M tuples of ~150 MB).

    Example:
        >>> ImageSizes(np.array([[32, 40]], dtype=np.int32))[0]
        (32, 40)
    """

    def __init__(self, sizes: np.ndarray) -> None:
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, row: int) -> tuple[int, int]:  # type: ignore[override]
        height, width = self.sizes[row].tolist()
        return height, width


_UNREADABLE = (0, 0)  # the size a scan gives an unreadable header


def _header_sizes(images: datasets.Dataset) -> list[tuple[int, int]]:
    column, sizes = images.column_names[0], []
    for batch in images.with_format("arrow").iter(batch_size=1024):
        for cell in batch.column(column).to_pylist():
            try:
                sizes.append(header_size(_nonempty(cell)))
            except DECODE_ERRORS:
                sizes.append(_UNREADABLE)
    return sizes


def _nonempty(cell: Any) -> Any:
    if cell is None or (isinstance(cell, dict) and cell.get("bytes") is None and cell.get("path") is None):
        raise CorruptImageError("the row holds no image (the cell is empty)")
    return cell


def default_image_mode(channels: Sequence[int]) -> str:
    """The image mode of a run whose teacher reads views of these channel counts: "L" when every view has one
    channel, else "RGB" (one-channel members of a mixed ensemble read the RGB view averaged, see
    :func:`fit_channels`).

    Example:
        >>> default_image_mode([1]), default_image_mode([3, 1])
        ('L', 'RGB')
    """
    return "L" if channels and all(c == MODE_CHANNELS["L"] for c in channels) else "RGB"


def resolve_image_mode(teacher: Any, image_mode: str | None, output_dir: str | None,
                       load: Callable[[], Teacher]) -> tuple[Any, str]:
    """The teacher and the run's image mode: the one given, else :func:`default_image_mode` of the teacher's view
    channels, known from a loaded :class:`Teacher` or from members whose spec sets ``input_size``; else the mode
    recorded by the run in ``output_dir`` (a resumed run, whose teacher is then checked against the recorded one);
    else the teacher is loaded now (``load``) to read its views.

    Args:
        teacher (`Teacher` or member specs): what :func:`hf_dr.reinforce` was given.
        image_mode (`str`, *optional*): the mode asked for.
        output_dir (`str`, *optional*): the folder of a run being resumed (None: a new run).
        load (`Callable`): loads the teacher.
    """
    if image_mode is not None:
        return teacher, image_mode
    if isinstance(teacher, Teacher):
        return teacher, default_image_mode([view.channels for view in teacher.views])
    specs = [MemberSpec.parse(s) for s in ([teacher] if isinstance(teacher, (str, MemberSpec, dict)) else teacher)]
    if all(spec.input_size for spec in specs):
        return teacher, default_image_mode([spec.input_size[0] for spec in specs])
    existing = ReinforceConfig.load(output_dir) if output_dir is not None else None
    if existing is not None and existing.image_mode is not None:
        return teacher, existing.image_mode
    loaded = load()
    return loaded, default_image_mode([view.channels for view in loaded.views])


def without_records(table: pa.Table, rows: Collection[int]) -> pa.Table:
    """``table`` (a shard's) with no records (and an empty class set) in its rows ``rows`` (0-based, within the table):
    the skipped rows.

    Example:
        >>> records = pa.array([[{"x": 1}, {"x": 2}], [{"x": 3}, {"x": 4}]])
        >>> table = without_records(pa.table({"key": ["a", "b"], REINFORCEMENTS_COLUMN: records}), [0])
        >>> table.column(REINFORCEMENTS_COLUMN).to_pylist()
        [[], [{'x': 3}, {'x': 4}]]
    """
    if not rows:
        return table
    keep = np.ones(table.num_rows, dtype=bool)
    keep[list(rows)] = False
    for name in (REINFORCEMENTS_COLUMN, CLASSES_COLUMN):
        if name not in table.column_names:
            continue
        index = table.schema.get_field_index(name)
        column = table.column(index).combine_chunks()
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
        values = pc.list_flatten(column).filter(pa.array(np.repeat(keep, lengths)))
        offsets = pa.array(np.concatenate([[0], np.cumsum(np.where(keep, lengths, 0))]).astype(np.int32))
        table = table.set_column(index, table.schema.field(index),
                                 pa.ListArray.from_arrays(offsets, values, type=column.type))
    return table


def fit_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """A ``uint8 [C, H, W]`` view with the teacher's channel count (gray repeated, or RGB averaged to gray)."""
    if image.shape[0] == channels:
        return image
    if image.shape[0] == 1:
        return image.expand(channels, -1, -1)
    return image.float().mean(0, keepdim=True).round().to(torch.uint8).expand(channels, -1, -1)


def render_view(view_policy: AugmentationPolicy, image: Any, params: dict[str, Any], spec: ViewSpec,
                partner: Any = None, image_mode: str | None = None) -> torch.Tensor:
    """The ``uint8 [C, H, W]`` view a teacher member reads: ``params`` replayed by the member's ``view_policy`` (see
    :func:`policy_for_view`) on the image (and partner) in the run's ``image_mode``, at the member's size, with its
    channel count. Generation and ``verify`` both call this."""
    image = to_pil(image, image_mode)
    partner = None if partner is None else to_pil(partner, image_mode)
    return fit_channels(view_policy.apply(image, params, (spec.height, spec.width), partner), spec.channels)
