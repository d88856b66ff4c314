"""The run plan: shards cover every row once, chunks cover every (row, index) once in row-major order and never span
two shards, for many sizes."""

from __future__ import annotations

import itertools

import pytest

from hf_dr.generate.plan import SHARDS_DIR, Chunk, ChunkPlan, Shard, plan_shards

SIZES = [1, 2, 3, 5, 7, 16, 17, 33]


@pytest.mark.parametrize("num_rows", [1, 2, 5, 16, 17, 100])
def test_shards_cover_every_row_exactly_once(num_rows):
    """Consecutive ranges of ``shard_size`` (the last one shorter), indexed in order, for every shard size."""
    for shard_size in SIZES:
        shards = plan_shards(num_rows, shard_size)
        assert [s.index for s in shards] == list(range(len(shards)))
        assert len(shards) == -(-num_rows // shard_size)
        rows = [row for s in shards for row in range(s.start, s.stop)]
        assert rows == list(range(num_rows))
        assert all(s.num_rows == shard_size for s in shards[:-1])
        assert 1 <= shards[-1].num_rows <= shard_size


def test_no_rows_no_shards():
    """An empty dataset plans no shard (reinforce refuses it earlier)."""
    assert plan_shards(0, 4) == []


def test_shard_paths_are_zero_padded_and_sort_in_row_order():
    """Shard files live under shards/ and sort lexicographically in row order (also past 10 and 100 shards)."""
    shards = plan_shards(1500, 10)
    paths = [s.path for s in shards]
    assert paths[0] == f"{SHARDS_DIR}/reinforcements-00000.parquet"
    assert paths[149] == f"{SHARDS_DIR}/reinforcements-00149.parquet"
    assert sorted(paths) == paths and len(set(paths)) == len(paths)


def _expected_views(shards: list[Shard], num_samples: int) -> list[tuple[int, int, int]]:
    """(shard index, row, reinforcement index) of every view, row-major, shard by shard."""
    return [(s.index, row, index) for s in shards for row in range(s.start, s.stop) for index in range(num_samples)]


@pytest.mark.parametrize("num_rows, shard_size", [(1, 1), (5, 2), (17, 16), (20, 5), (9, 20)])
def test_chunks_cover_every_view_once_in_row_major_order(num_rows, shard_size):
    """For every N and batch size: the chunks' views, in order, are every (row, index) once; none spans shards."""
    shards = plan_shards(num_rows, shard_size)
    for num_samples, batch_size in itertools.product([1, 2, 3, 5], [1, 2, 3, 4, 7, 64]):
        plan = ChunkPlan(shards, num_samples, batch_size)
        got = [(chunk.shard.index, row, index) for chunk in plan for row, index in chunk.views()]
        assert got == _expected_views(shards, num_samples)
        for chunk in plan:
            assert all(chunk.shard.start <= row < chunk.shard.stop for row, _ in chunk.views())
            assert 1 <= len(chunk) == len(chunk.views()) <= batch_size
        expected_count = sum(-(-s.num_rows * num_samples // batch_size) for s in shards)
        assert len(plan) == expected_count


def test_last_marks_exactly_the_final_chunk_of_each_shard():
    """``last`` is true once per shard, on the chunk whose stop is the shard's view count."""
    shards = plan_shards(11, 4)
    plan = ChunkPlan(shards, num_samples=3, batch_size=5)
    lasts = [chunk for chunk in plan if chunk.last]
    assert [c.shard.index for c in lasts] == [s.index for s in shards]
    assert all(c.stop == c.shard.num_rows * 3 for c in lasts)
    for previous, chunk in zip(plan, list(plan)[1:], strict=False):
        assert previous.last == (previous.shard != chunk.shard)
        if previous.shard == chunk.shard:
            assert chunk.start == previous.stop  # contiguous within a shard


def test_chunks_of_a_subset_of_shards():
    """A process's own shards (every other one) are planned alone, views only of those rows."""
    shards = plan_shards(10, 3)[1::2]
    plan = ChunkPlan(shards, num_samples=2, batch_size=4)
    rows = sorted({row for chunk in plan for row, _ in chunk.views()})
    assert rows == [3, 4, 5, 9]


def test_indexing_matches_iteration_and_refuses_out_of_range():
    """``plan[i]`` is the i-th chunk; negative or too large indices raise IndexError (so iteration stops)."""
    plan = ChunkPlan(plan_shards(7, 3), num_samples=2, batch_size=4)
    assert len(plan) == 5  # shards of 3, 3, 1 rows: 6, 6, 2 views in chunks of 4
    assert [plan[i] for i in range(len(plan))] == list(plan)
    assert plan[2] == Chunk(Shard(1, 3, 6), 0, 4, 2)
    assert plan[4] == Chunk(Shard(2, 6, 7), 0, 2, 2)
    for bad in (-1, len(plan), 100):
        with pytest.raises(IndexError):
            plan[bad]


def test_empty_plan():
    """No shards: no chunks."""
    plan = ChunkPlan([], num_samples=3, batch_size=8)
    assert len(plan) == 0 and list(plan) == []
    with pytest.raises(IndexError):
        plan[0]


def test_the_renderer_keeps_the_plan_lazy() -> None:
    """Issue 12: ViewRenderer turned the plan into a list (ImageNet+: 4.0M chunks, 705 MB, 34 s, per worker). The
    plan of 1.28M rows x N=400 in batches of 128 pickles in a few kilobytes and indexes any chunk."""
    import pickle

    import datasets

    from hf_dr import create_policy
    from hf_dr.generate.render import ViewRenderer
    from hf_dr.models.teacher import ViewSpec

    plan = ChunkPlan(plan_shards(1_281_167, 1000), num_samples=400, batch_size=128)
    images = datasets.Dataset.from_dict({"image": []}, features=datasets.Features({"image": datasets.Image()}))
    renderer = ViewRenderer(images, datasets.Image(), [], plan, create_policy("rrc"),
                            [ViewSpec(3, 224, 224, "bilinear")], 0, 128)
    assert len(renderer) == len(plan) > 4_000_000
    assert len(pickle.dumps(renderer.chunks)) < 200_000
    last = renderer.chunks[len(plan) - 1]
    assert last.last and last.shard.stop == 1_281_167
