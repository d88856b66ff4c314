"""Curricula by the stored teacher confidence (App. C.4/C.5): the window's path over the epochs, and a replay that
draws only the easiest (or hardest) stored views first and all of them by the end."""

from __future__ import annotations

import pytest

from hf_dr import create_policy
from hf_dr.data.curriculum import CURRICULA, Curriculum, easy_to_hard
from hf_dr.data.replay import ReinforcedTransform
from hf_dr.errors import InvalidConfigError
from tests.data_utils import ProjectionTeacher, digits_dataset, reinforce_in_memory

N = 10


@pytest.fixture(scope="module")
def table():
    images = digits_dataset(24)
    return reinforce_in_memory(images, create_policy("rrc"), ProjectionTeacher(size=24), N, 3)


def test_windows_move_from_start_to_end_along_a_cosine():
    curriculum = Curriculum.named("easy->all", num_epochs=5)
    windows = [curriculum.window(e) for e in range(5)]
    assert windows[0] == (0.0, 0.1) and windows[-1] == (0.0, 1.0)
    assert [w[1] for w in windows] == sorted(w[1] for w in windows) and windows[2] == (0.0, 0.55)
    assert Curriculum.named("all->hard", 3).ranks(2, N) == (9, 10) and len(CURRICULA) == 9
    assert easy_to_hard([0.2, 0.9, 0.9, 0.5]) == [1, 2, 3, 0]
    with pytest.raises(InvalidConfigError, match="unknown curriculum"):
        Curriculum.named("easy->medium", 3)
    with pytest.raises(InvalidConfigError, match="0 <= a < b <= 1"):
        Curriculum((0.5, 0.4), (0.0, 1.0), 3)


@pytest.mark.parametrize(("name", "pick"), [("easy->all", max), ("hard->all", min)])
def test_the_replay_draws_the_window_of_the_confidence_order(table, name, pick):
    transform = ReinforcedTransform(table, policy="rrc", size=16, num_classes=10,
                                    curriculum=Curriculum.named(name, num_epochs=4))
    keys = table["key"]
    confidences = {row["key"]: [max(r["probs"]) for r in row["reinforcements"]] for row in table}
    transform.set_epoch(0)
    assert all(confidences[k][transform.choose(k)] == pick(confidences[k]) for k in keys)  # the easiest / hardest
    drawn = set()
    transform.set_epoch(3)  # the last epoch: every view may be drawn
    for seed in range(30):
        transform.seed = seed
        drawn |= {(k, transform.choose(k)) for k in keys[:4]}
    assert len(drawn) > 4 * N // 2
