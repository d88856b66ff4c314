"""``ReinforcedTransform``: the ``set_transform`` hook that replays one stored augmentation per sample per epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image

import hf_dr.augment.functional as K
from hf_dr.augment.functional import IMAGENET_MEAN, IMAGENET_STD
from hf_dr.augment.policy import AugmentationPolicy
from hf_dr.augment.seeded import PARTNER_FIELD
from hf_dr.augment.seeding import choose_index
from hf_dr.data.batch_replay import replay_batch
from hf_dr.data.codec import CLASSES_COLUMN, RecordCodec
from hf_dr.data.collate import TARGET_IDS, TARGET_PROBS, ReinforcedCollate, check_output
from hf_dr.data.columns import check_columns, class_count
from hf_dr.data.curriculum import Curriculum, easy_to_hard
from hf_dr.data.description import read_description
from hf_dr.data.digests import RowDigests
from hf_dr.data.epochs import EpochHook, check_attachable
from hf_dr.data.keys import KeyIndex, check_verify_images, refuse_other_keys
from hf_dr.data.recorded_options import recorded_columns, resolve_column, resolve_num_classes, resolve_policy
from hf_dr.data.soft_labels import densify
from hf_dr.data.view_options import check_channels, check_seed, refuse_stream, view_options
from hf_dr.errors import ClassCountMismatchError, DataMismatchError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ReinforcedTransform"]

ATTACH_FIX = ("Set the transform with transform.attach(dataset) or "
              "dataset.set_transform(transform, columns=transform.input_columns).")
_SKIPPED = ("its image could not be decoded when the run was made (on_bad_image='skip'), so the run gave it no "
            "records and lists it under 'skipped' in its manifest.json")
_UNREINFORCED_FIX = ("the images and the reinforcements come from different versions of the dataset, or the run "
                     f"skipped this row: {_SKIPPED}. Reinforce this dataset or load the source revision that was "
                     "reinforced; leave skipped rows out of the images (hf_dr.train.inputs.training_data does).")


class ReinforcedTransform(EpochHook):
    """Replays stored reinforcements on the fly: use it as ``dataset.set_transform(...)``.

    Per sample it picks one of the N stored records with a generator seeded by ``(seed, epoch, key)``, so the choice
    is the same for any number of workers or processes; it reads only that record from the Arrow table, replays
    its augmentation on the original image and returns ``pixel_values`` (normalised ``float32 [C, H, W]``) and
    ``labels`` (the dense soft target, ``float32 [num_classes]``). With ``output="uint8"`` it returns the view as
    ``uint8 [C, H, W]`` and the stored top-k (``target_ids``, ``target_probs``) instead, for :meth:`collate` to
    normalise and densify once per batch: the same batches, bit for bit, for about 0.7x the loader's CPU.

    The dataset describes itself (:mod:`hf_dr.data.description`): the policy, the class count and the column roles
    are read from it, so ``ReinforcedTransform(dataset, size=224)`` needs nothing else. An argument that contradicts
    the recorded value is refused, naming the fields that differ. Datasets made before hf-dr 0.2 carry no description:
    pass ``policy=`` (and ``num_classes=`` without a ``ClassLabel`` column) for them.

    The replay is bound to the images it replays: with the image digests a run keyed by a column or by path stores
    (or the content keys, digests themselves), each row's image is compared with its digest the first time a process
    replays it (``verify_images``), reading the encoded bytes from the dataset it is attached to (or ``images``): a
    changed image under the same key raises :class:`DataMismatchError` naming the key, the row and the fix.

    Args:
        reinforcements (`datasets.Dataset`): rows with a key and a list of records (``params``, ``ids``, ``probs``);
            it may also hold the images (the self-contained layout).
        policy (`str`, `dict` or `AugmentationPolicy`, *optional*): the policy the records were made with; read from
            the dataset's description by default.
        num_classes (`int`, *optional*): class count; read from the description or a ``ClassLabel`` column.
        size (`int` or `tuple[int, int]`, *optional*, defaults to 224): output resolution.
        mean, std (`tuple[float, ...]`, *optional*): normalisation, ImageNet's by default.
        data_config (`dict`, *optional*): a timm data config (``input_size``, ``mean``, ``std``) overriding the above.
        seed (`int`, *optional*, defaults to 0): seed of the per-epoch record choice.
        images (`datasets.Dataset`, *optional*): the dataset holding the images, for mixing partners; defaults to
            ``reinforcements``.
        image_column, key_column (`str`, *optional*): the columns the hook reads (see :attr:`column_options`); the
            recorded ones by default (``"image"`` and ``"key"`` without a description).
        label_column (`str`, *optional*, defaults to ``"label"``): a ``ClassLabel`` column to read the class count
            from (see :func:`hf_dr.data.columns.class_count`).
        reinforcements_column (`str`, *optional*): the records column (the recorded one, else ``"reinforcements"``).
        leftover (`str`, *optional*, defaults to ``"uniform"``): see :func:`hf_dr.densify`.
        curriculum (`Curriculum`, *optional*): draw each epoch's record among a window of the sample's records
            ordered by the teacher's confidence (:mod:`hf_dr.data.curriculum`, paper App. C.4); uniformly among all N
            when not given.
        records (`RowGroupRecords`, *optional*): the records of ``reinforcements``' rows, read by row group when first
            needed (:func:`hf_dr.generate.loading.open_run_records`, whose rows are then ``reinforcements``, without
            a records column); read from ``reinforcements`` itself by default.
        verify_images (`str`, *optional*, defaults to ``"sample"``): with the image digests a run keyed by a column
            or by path stores (or the content keys of a run keyed by content), ``"sample"`` and ``"full"`` compare each
            row's image with its digest the first time this process replays the row
            (:class:`hf_dr.data.digests.RowDigests`; the bytes are read from the dataset the hook is attached to, or
            ``images``), so a changed image under the same key raises :class:`DataMismatchError` instead of training
            with another image's soft labels; ``"off"`` accepts changed images. (The joins,
            :func:`hf_dr.load_reinforced` and ``training_data``, also check rows up front.)
        output (`str`, *optional*, defaults to ``"float32"``): ``"float32"`` (normalised ``pixel_values`` and dense
            ``labels`` per sample) or ``"uint8"`` (the ``uint8`` view and the top-k ``target_ids`` and
            ``target_probs``, which need ``collate_fn=transform.collate()``; :func:`hf_dr.fit` and
            :func:`hf_dr.create_reinforced_loader` use it by themselves). Map-style rows only: a stream replays
            ``float32`` samples.

    Example (4 bundled digits reinforced by a random ``test_resnet``, replayed on their images):
        >>> from hf_dr import load_run_records
        >>> from hf_dr.generate.examples import tiny_run
        >>> digits, run = tiny_run()  # 4 bundled digits reinforced by a random test_resnet
        >>> ReinforcedTransform(load_run_records(run), size=32).attach(digits)[0]["labels"].shape
        torch.Size([10])
    """

    attach_role = "image dataset"

    def __init__(
        self,
        reinforcements: datasets.Dataset,
        policy: str | dict[str, Any] | AugmentationPolicy | None = None,
        num_classes: int | None = None,
        size: int | Sequence[int] = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        data_config: dict[str, Any] | None = None,
        seed: int = 0,
        images: datasets.Dataset | None = None,
        image_column: str | None = None,
        key_column: str | None = None,
        label_column: str | None = "label",
        reinforcements_column: str | None = None,
        leftover: str = "uniform",
        curriculum: Curriculum | None = None,
        verify_images: str = "sample",
        output: str = "float32",
        records: Any = None,
    ) -> None:
        self.output = check_output(output)
        refuse_stream(reinforcements, "reinforcements", images)
        check_verify_images(verify_images)
        self.size, self.mean, self.std, self.channels = view_options(size, mean, std, data_config)
        self.seed = check_seed(seed)
        features = reinforcements.features if records is None else records.features  # records: the whole schema
        self.description = read_description(features)
        recorded = recorded_columns(self.description, reinforcements)
        image_column = resolve_column("image_column", image_column, recorded["image"], None)
        key_column = resolve_column("key_column", key_column, recorded["key"], reinforcements)
        reinforcements_column = resolve_column("reinforcements_column", reinforcements_column,
                                               recorded["reinforcements"], reinforcements)
        check_columns(features, role="reinforcement dataset", key_column=key_column,
                      reinforcements_column=reinforcements_column)
        self.policy = resolve_policy(self.description, policy)
        self.leftover, self.curriculum = leftover, curriculum
        self._easy_to_hard: dict[str, list[int]] = {}  # per key, with a curriculum: record indices, easiest first
        self.image_column, self.key_column, self.label_column = image_column, key_column, label_column
        self.reinforcements_column, self._records = reinforcements_column, records
        self.image_mode = self.description.image_mode if self.description is not None else None
        check_channels(self.channels, self.image_mode, "the run's teacher saw")
        from_labels = class_count(reinforcements, label_column)
        self.num_classes = resolve_num_classes(self.description, num_classes, from_labels)
        self.codec = self.description.record_codec if self.description is not None else RecordCodec()
        self.codec.check_features(features[reinforcements_column].feature, reinforcements.column_names)
        if self.codec.class_set:
            check_columns(reinforcements, CLASSES_COLUMN, role="reinforcement dataset", fix=(
                f"its records ({self.codec.labels!r} codec) code class ids against each row's {CLASSES_COLUMN!r} "
                "column: keep that column (select or remove other columns only)."))
        table = reinforcements.flatten_indices() if reinforcements._indices is not None else reinforcements
        self._table = table.select_columns([key_column, *([CLASSES_COLUMN] if self.codec.class_set else []),
                                            *([reinforcements_column] if records is None else [])])
        self._rows = KeyIndex(self._table.data.column(key_column), where="the reinforcements", fix=_UNREINFORCED_FIX,
                              keep_keys=False)  # _records_of checks the row's key in the table itself
        self._partners = self._partner_source(images if images is not None else reinforcements)
        self._digests = RowDigests.of(table, key_column, self._rows, self.description, verify_images)
        if self._digests is not None:
            self._digests.bind(images if images is not None else table, image_column, key_column)
        super().__init__()

    # -- the hook -----------------------------------------------------------------------------------------------
    @property
    def column_options(self) -> dict[str, str]:
        """The columns the hook reads, by the option naming them."""
        return {"image_column": self.image_column, "key_column": self.key_column}

    def attach(self, dataset: datasets.Dataset) -> datasets.Dataset:
        """Sets this hook on ``dataset`` (in place), formatting only the columns it reads, and reads the image
        digests' bytes from it (see ``verify_images``); returns it."""
        check_attachable(dataset)
        refuse_stream(dataset, "the dataset to attach to")
        check_columns(dataset, role=self.attach_role, **self.column_options)
        refuse_other_keys(dataset, self.key_column, self._rows, self.description)
        self.bind_images(dataset)
        return super().attach(dataset)

    def bind_images(self, dataset: datasets.Dataset) -> None:
        """Reads the encoded images whose digests are checked from ``dataset``, the one the hook replays (what
        :meth:`attach` and :class:`~hf_dr.data.preloaded.PreloadedDataset` do)."""
        if self._digests is not None:
            self._digests.bind(dataset, self.image_column, self.key_column)

    @property
    def output_columns(self) -> list[str]:
        """The columns of a sample: ``pixel_values`` and ``labels``, or the top-k ones with ``output="uint8"``."""
        return ["pixel_values", "labels"] if self.output == "float32" else ["pixel_values", TARGET_IDS, TARGET_PROBS]

    def collate(self, channels_last: bool = False, keep_memory: bool = True) -> ReinforcedCollate:
        """The DataLoader ``collate_fn`` of ``output="uint8"`` samples (:class:`hf_dr.ReinforcedCollate`, which
        explains the options), with this transform's normalisation, class count and leftover rule: batches equal to
        the ``float32`` output's."""
        return ReinforcedCollate(self.num_classes, self.mean, self.std, self.leftover, channels_last, keep_memory)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[torch.Tensor]]:
        check_columns(batch, role="batch", fix=ATTACH_FIX, **self.column_options)
        return replay_batch(self, batch[self.image_column], batch[self.key_column])

    # -- replay -------------------------------------------------------------------------------------------------
    def choose(self, key: str, count: int | None = None, records: Sequence[Any] | None = None,
               classes: Any = None) -> int:
        """The index of the record used for ``key`` in the current epoch, among its ``count`` records (looked up in the
        table when not given): the one choice of map-style rows and of both streamed layouts. A key without records
        raises :class:`DataMismatchError`. With a :attr:`curriculum` the draw is among the ranks of this epoch's
        window of ``key``'s records ordered easy to hard (``records`` and ``classes``: the row's, when read)."""
        count = len(self._records_of(key)[0]) if count is None else count
        _require_records(key, count)
        if self.curriculum is None:
            return choose_index(count, self.seed, self.epoch, key)
        first, stop = self.curriculum.ranks(self.epoch, count)
        return self._order(key, records, classes)[first + choose_index(stop - first, self.seed, self.epoch, key)]

    def _order(self, key: str, records: Sequence[Any] | None, classes: Any) -> list[int]:
        """``key``'s record indices from the most to the least confident teacher label (cached per key)."""
        order = self._easy_to_hard.get(key)
        if order is None:
            if records is None:
                records, classes = self._records_of(key)
            classes = classes.as_py() if hasattr(classes, "as_py") else classes
            confidences = []
            for stored in records:
                stored = stored.as_py() if hasattr(stored, "as_py") else stored
                confidences.append(float(np.max(self.codec.decode_labels(stored, classes)[1])))
            order = self._easy_to_hard[key] = easy_to_hard(confidences)
        return order

    def record(self, key: str, index: int | None = None, records: Sequence[Any] | None = None, classes: Any = None,
               image_size: tuple[int, int] | None = None, partner_size: tuple[int, int] | None = None
               ) -> dict[str, Any]:
        """The stored record ``index`` of ``key`` (this epoch's choice when ``index`` is None), decoded: its params,
        class ids and target probabilities, whatever the run's codec (:mod:`hf_dr.data.codec`).

        Args:
            key (`str`): the sample key (it also seeds the choice).
            index (`int`, *optional*): a given record instead of this epoch's choice.
            records (`Sequence`, *optional*): ``key``'s stored records when they are already read, e.g. a streamed
                row's own records column (with its ``classes`` for the class-set codecs); looked up by key in the
                reinforcement table otherwise.
            classes (*optional*): the row's class set, with ``records`` (class-set codecs).
            image_size, partner_size (`tuple[int, int]`, *optional*): height and width of the image and of its mixing
                partner as the teacher saw them: seeded params are drawn again from them (:meth:`replay` passes them).
        """
        index, stored, classes = self._stored(key, index, records, classes)
        ids, probs = self.codec.decode_labels(stored, classes)
        params = self._params(key, index, stored["params"], image_size, partner_size)
        return {"params": params, "ids": ids.tolist(), "probs": probs.tolist()}

    def replay(self, image: Any, key: str, index: int | None = None, records: Sequence[Any] | None = None,
               classes: Any = None, chosen: tuple[int, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel values and dense soft target of ``image`` under the chosen record of ``key``.

        The one replay of map-style rows and streamed ones: ``records`` (and ``classes``) are ``key``'s stored records
        when already read, else they are looked up by key (see :meth:`record`); ``chosen`` is a record already
        chosen, as ``(index, record)`` (a stream keeps only that one: its index still seeds seeded params).
        """
        view, record = self.view(image, key, index, records, classes, chosen)
        target = densify(record["ids"], record["probs"], self.num_classes, self.leftover)
        return K.normalize(view, self.mean, self.std), target

    def sample(self, image: Any, key: str, index: int | None = None, records: Sequence[Any] | None = None,
               classes: Any = None, chosen: tuple[int, Any] | None = None) -> dict[str, torch.Tensor]:
        """One sample in this transform's :attr:`output` (see :meth:`replay` for the arguments): ``pixel_values`` and
        ``labels`` from :meth:`replay`, or the ``uint8`` :meth:`view` with the record's top-k."""
        if self.output == "float32":
            pixel_values, labels = self.replay(image, key, index, records, classes, chosen)
            return {"pixel_values": pixel_values, "labels": labels}
        view, record = self.view(image, key, index, records, classes, chosen)
        return {"pixel_values": view, TARGET_IDS: torch.tensor(record["ids"], dtype=torch.int64),
                TARGET_PROBS: torch.tensor(record["probs"], dtype=torch.float32)}

    def view(self, image: Any, key: str, index: int | None = None, records: Sequence[Any] | None = None,
             classes: Any = None, chosen: tuple[int, Any] | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """The ``uint8 [C, H, W]`` view of ``image`` the teacher labelled under the chosen record of ``key`` (at this
        transform's size), and the decoded record (:meth:`record`): what :meth:`replay` normalises."""
        if chosen is not None:
            index, records = chosen[0], {chosen[0]: chosen[1]}
        index, stored, classes = self._stored(key, index, records, classes)
        view, params = self.view_of(image, key, index, stored["params"])
        ids, probs = self.codec.decode_labels(stored, classes)
        return view, {"params": params, "ids": ids.tolist(), "probs": probs.tolist()}

    def view_of(self, image: Any, key: str, index: int, stored_params: dict[str, Any],
                partners: dict[str, Any] | None = None, decoded: bool = False) -> tuple[torch.Tensor, dict[str, Any]]:
        """The ``uint8`` view of ``image`` under the stored params of ``key``'s record ``index`` (as Python values;
        ``decoded``: stored params already decoded), and the params decoded: the per-image work of :meth:`view` and
        of a batch (:mod:`hf_dr.data.batch_replay`). ``partners``: mixing partners' images already read, by key (else
        :meth:`partner_image` reads each)."""
        image = self.as_teacher_saw(image, key)
        partner_key = self._stored_partner_key(stored_params)
        partner = None if partner_key is None else self.as_teacher_saw(
            self.partner_image(partner_key) if partners is None else partners[partner_key], partner_key)
        params = stored_params if decoded else self._params(key, index, stored_params, K.image_size_of(image),
                                                            None if partner is None else K.image_size_of(partner))
        return self.policy.apply(image, params, self.size, partner), params

    def _stored(self, key: str, index: int | None, records: Sequence[Any] | None, classes: Any
                ) -> tuple[int, dict[str, Any], Any]:
        """The index of the record used, the stored record as Python values, and the row's class set."""
        if records is None:
            records, classes = self._records_of(key)
        if index is None:
            index = self.choose(key, len(records), records, classes)
        else:
            _require_records(key, len(records))
        stored = records[index]  # records may be {index: record}: a record chosen before (see view)
        stored = stored.as_py() if hasattr(stored, "as_py") else stored
        return index, stored, classes.as_py() if hasattr(classes, "as_py") else classes

    def _params(self, key: str, index: int, stored: dict[str, Any], image_size: tuple[int, int] | None,
                partner_size: tuple[int, int] | None) -> dict[str, Any]:
        """Stored params decoded, or seeded ones drawn again (and checked) from the image sizes."""
        description = self.description
        pool_size = (description.source or {}).get("num_rows") if description is not None else None
        return self.codec.decode_params(self.policy, stored, description.seed if description is not None else 0, key,
                                        index, image_size, pool_size, partner_size)

    def _stored_partner_key(self, stored: dict[str, Any]) -> str | None:
        """The key of the mixing partner of stored params (either mode), or None when they do not mix."""
        if self.codec.params == "seeded":
            return stored.get(PARTNER_FIELD) or None  # only mixing policies store one
        return self.policy.partner_key(stored)  # stored values name the mode and the partner as decoded ones do

    def as_teacher_saw(self, image: Any, key: str) -> Any:
        """``image`` in the run's recorded image mode (:func:`hf_dr.augment.functional.convert_mode`), as the teacher
        saw it. Runs that recorded no mode (before hf-dr recorded it) converted by :func:`~hf_dr.augment.functional.
        to_pil`'s default, except 16-bit and other wide images, which their teacher saw clipped: those are refused."""
        if self.image_mode is not None:
            return K.to_pil(image, self.image_mode)
        if isinstance(image, Image.Image) and image.mode in K.WIDE_MODES:
            raise DataMismatchError(
                f"sample key {key!r} has a {image.mode!r} image, and these reinforcements record no image mode (made "
                "before hf-dr recorded one): their teacher saw it clipped to 8 bits by Pillow (most such images turn "
                "white), which no replay reproduces. Reinforce the dataset again with this hf-dr (it rescales them).")
        return image

    def _records_of(self, key: str) -> tuple[Any, Any]:
        """The Arrow list of ``key``'s stored records and its row's class set (None unless the codec has one): only
        this row is read, no other row is formatted."""
        row = self._rows.row(key)
        data = self._table.data
        self._rows.check(key, row, data.column(self.key_column)[row].as_py())
        classes = data.column(CLASSES_COLUMN)[row] if self.codec.class_set else None
        if self._records is not None:
            return self._records.records(row, key), classes
        return data.column(self.reinforcements_column)[row].values, classes

    def _partner_source(self, images: datasets.Dataset) -> tuple[datasets.Dataset, KeyIndex] | None:
        if not self.policy.needs_partner:
            return None
        check_columns(images, role="partner image dataset", **self.column_options)
        images = images.flatten_indices() if images._indices is not None else images
        keys = KeyIndex(images.data.column(self.key_column), where="the image dataset",
                        fix="mixing partners are looked up by key: pass images=<the full dataset>.", keep_keys=False)
        return images.select_columns([self.image_column, self.key_column]), keys

    def partner_for(self, record: dict[str, Any]) -> Any:
        """The original image of a decoded record's mixing partner (None for records that do not mix)."""
        key = self.policy.partner_key(record["params"])
        return None if key is None else self.partner_image(key)

    def partner_image(self, key: str) -> Any:
        """The original image of the mixing partner ``key``, looked up in the image dataset."""
        dataset, keys = self._partners
        position = keys.row(key)
        row = dataset[position]
        keys.check(key, -1, row[self.key_column])
        if self._digests is not None:  # the partner's own bytes, undecoded
            self._digests.check(key, dataset.data.column(self.image_column)[position].as_py())
        return row[self.image_column]

    def check_num_classes(self, model_num_classes: int) -> None:
        """Raises :class:`ClassCountMismatchError` if a model's class count differs from the soft labels'."""
        if model_num_classes != self.num_classes:
            raise ClassCountMismatchError(
                f"the model predicts {model_num_classes} classes but the reinforced labels have {self.num_classes}; "
                "reset the classifier head (e.g. timm.create_model(..., num_classes=N))"
            )


def _require_records(key: str, count: int) -> None:
    if count == 0:
        raise DataMismatchError(f"sample key {key!r} holds no reinforcement records: {_SKIPPED}. Leave such rows "
                                "out (hf_dr.load_run_records does).")
