"""An utterance's state changes only as speech.LIFE lists: every other step raises."""

from __future__ import annotations

import itertools

import pytest

from server.core.speech import LIFE, IllegalStep, Kind, State, Step, Utterance


def test_every_state_is_reached_from_held() -> None:
    seen, todo = {State.HELD}, [State.HELD]
    while todo:
        state = todo.pop()
        for (source, _), target in LIFE.items():
            if source is state and target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(State)


def test_a_step_the_table_does_not_list_raises_and_changes_nothing() -> None:
    for state, step in itertools.product(State, Step):
        u = Utterance(1, Kind.REPLY, state=state)
        if (state, step) in LIFE:
            u.step(step)
            assert u.state is LIFE[(state, step)]
        else:
            with pytest.raises(IllegalStep):
                u.step(step)
            assert u.state is state


def test_the_ends_are_final() -> None:
    assert not [key for key in LIFE if key[0] in (State.DONE, State.CUT_OFF, State.CANCELLED)]
