"""A resume reads the source the run started from: the images of the finished shards' rows are compared with the
digests the shards stored, so a rerun given another source with the same keys (another revision, a re-encoded copy)
is refused instead of mixing two sources' labels in one run under a config that names the first.

Runs keyed by content need no check: their keys are the images' hashes, and the keys' SHA-256 is part of the plan
(:class:`~hf_dr.generate.run_config.ReinforceConfig`). Runs keyed by a column or by file name store an 8-byte digest
of every image (:data:`~hf_dr.data.schema.DIGEST_COLUMN`); :data:`~hf_dr.data.keys.DIGEST_SAMPLE_SIZE` rows spread
over the finished shards are compared (the same rows every time, on every process), reading the digest column of at
most that many shards and hashing that many source images.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import datasets
import pyarrow.parquet as pq

from hf_dr.data.keys import digest_hex, digest_positions
from hf_dr.data.schema import DIGEST_COLUMN
from hf_dr.data.source_keys import scan_digests
from hf_dr.errors import ConfigConflictError
from hf_dr.generate.plan import Shard
from hf_dr.generate.run_config import FIX as OVERWRITE_FIX
from hf_dr.generate.run_config import ReinforceConfig
from hf_dr.generate.storage import run_file, shard_record

SOURCE_FIELDS = ("id", "split", "revision", "builder")


def refuse_other_source(dataset: datasets.Dataset, keys: Sequence[str], config: ReinforceConfig,
                        existing: ReinforceConfig, shards: Sequence[Shard], output_dir: str) -> None:
    """Raises :class:`ConfigConflictError` if ``dataset``'s images are not those the finished shards of the run in
    ``output_dir`` were made from (``existing``, the recorded config; ``config``, this call's; ``keys``, the rows'
    keys), naming the first changed row, what the two sources are, and the fix. With no finished shard to compare,
    a source recorded under another id, split or revision is refused: the config would name the wrong one."""
    if config.columns.by_content:
        return
    was, now = ({f: c.dataset[f] for f in SOURCE_FIELDS if c.dataset.get(f) is not None} for c in (existing, config))
    sources = f"it was started from {was}, this call reads {now}"
    fingerprint = config.fingerprint()
    done = [s for s in shards if shard_record(output_dir, s, fingerprint) is not None]
    if not done and was != now:
        raise ConfigConflictError(f"{output_dir!r} holds a run started from another source: {sources}. {FIX}")
    recorded = _recorded_digests(output_dir, done)
    found = scan_digests(dataset, config.columns.image, [row for row, _ in recorded])
    changed = [(row, new, old) for (row, old), new in zip(recorded, found, strict=True) if new != old]
    if not changed:
        return
    row, new, old = changed[0]
    raise ConfigConflictError(
        f"{output_dir!r} holds a run made from another source: {len(changed)} of the {len(recorded)} images compared "
        f"in its finished shards differ from this dataset's under the same keys (first: row {row}, key "
        f"{keys[row]!r}, BLAKE2b-64 {digest_hex(new)}, recorded {digest_hex(old)})"
        f"{'; ' + sources if was != now else ''}. Resuming would mix two sources in one run. {FIX}"
    )


FIX = ("Pass the source the run started from to resume it, or overwrite=True (--overwrite) to start over from this "
       "one (or use a new --output-dir).")


def _recorded_digests(output_dir: str, done: Sequence[Shard]) -> list[tuple[int, int]]:
    """``(source row, stored image digest)`` of :data:`~hf_dr.data.keys.DIGEST_SAMPLE_SIZE` rows spread over the
    ``done`` shards, reading only the shards that hold them; empty for shards that stored no digests."""
    offsets, total = [], 0
    for shard in done:
        offsets.append(total)
        total += shard.num_rows
    picked: dict[int, list[int]] = {}  # index in done -> rows of that shard whose digests are compared
    for position in digest_positions(total, "sample"):
        k = bisect.bisect_right(offsets, position) - 1
        picked.setdefault(k, []).append(position - offsets[k])
    recorded: list[tuple[int, int]] = []
    for k, rows in sorted(picked.items()):
        path = run_file(output_dir, done[k].path)
        if DIGEST_COLUMN not in pq.read_schema(path).names:
            return []  # a run that stored no digests (made before they were) cannot tell
        digests = pq.read_table(path, columns=[DIGEST_COLUMN]).column(0).to_pylist()
        recorded += [(done[k].start + r, digests[r]) for r in rows]
    return recorded


def refuse_other_weights(current: Sequence[dict[str, Any]], recorded: Sequence[dict[str, Any]],
                         output_dir: str) -> None:
    """Raises :class:`ConfigConflictError` naming the member and its weights when a loaded member's state-dict hash
    differs from the one the run in ``output_dir`` recorded."""
    for index, (now, then) in enumerate(zip(current, recorded, strict=True)):
        if then.get("sha256") is None or now.get("sha256") == then["sha256"]:
            continue
        spec, old = now["spec"], then["spec"].get("weights")
        where = spec.get("weights") or f"the Hub weights of {spec.get('arch')}"
        raise ConfigConflictError(
            f"teacher member {index} ({spec.get('arch')}): {where} holds other weights (state-dict sha256 "
            f"{now.get('sha256', '')[:12]}...) than the run in {output_dir!r} was made with ({then['sha256'][:12]}... "
            f"from {old or 'the Hub'}); it was replaced, or another file was given. Pass the weights the run used. "
            f"{OVERWRITE_FIX}"
        )
