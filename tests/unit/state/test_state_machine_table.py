"""The transition table: every state has a step, every event leads somewhere,
every state is reachable from the start, and every path can end."""

from __future__ import annotations

import pytest

from runtime.state.driver import STEPS
from runtime.state.machine import FINAL_STATES, TRANSITIONS, Event, State, UnknownEvent, next_state


def test_every_state_has_transitions_and_every_non_final_state_a_step() -> None:
    assert set(TRANSITIONS) == set(State)
    assert set(STEPS) == set(State) - FINAL_STATES
    for state in FINAL_STATES:
        assert TRANSITIONS[state] == {}


def test_every_state_is_reachable_from_early_init() -> None:
    seen = {State.EARLY_INIT}
    todo = [State.EARLY_INIT]
    while todo:
        for target in TRANSITIONS[todo.pop()].values():
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(State)


def test_a_final_state_is_reachable_from_every_state() -> None:
    reaches_end = set(FINAL_STATES)
    changed = True
    while changed:
        changed = False
        for state, events in TRANSITIONS.items():
            if state not in reaches_end and reaches_end & set(events.values()):
                reaches_end.add(state)
                changed = True
    assert reaches_end == set(State)


def test_the_start_runs_in_the_documented_order() -> None:
    order = [
        State.EARLY_INIT,
        State.EARLY_TOTP,
        State.MEASURE,
        State.FIND_BOOT,
        State.ROLLBACK_PREFLIGHT,
        State.KEYRING_CHECK,
        State.TOTP,
        State.HOTP,
        State.AUTOBOOT,
    ]
    events = [
        Event.OK,
        Event.DONE,
        Event.DONE,
        Event.FOUND,
        Event.OK,
        Event.OK,
        Event.SHOWN,
        Event.VERIFIED,
    ]
    for state, event, following in zip(order[:-1], events, order[1:], strict=True):
        assert next_state(state, event) is following
    assert next_state(State.AUTOBOOT, Event.INTERRUPTED) is State.MAIN_MENU
    assert next_state(State.AUTOBOOT, Event.TIMEOUT) is State.DEFAULT_BOOT


def test_every_way_to_the_shell_asks_first() -> None:
    for state, events in TRANSITIONS.items():
        if State.RECOVERY in events.values():
            assert state is State.RECOVERY_CONFIRM


def test_every_event_ends_some_state() -> None:
    assert {event for events in TRANSITIONS.values() for event in events} == set(Event)


def test_an_event_the_state_does_not_list_is_an_error() -> None:
    assert Event.CONFIRMED not in TRANSITIONS[State.MAIN_MENU]
    with pytest.raises(UnknownEvent, match="main-menu"):
        next_state(State.MAIN_MENU, Event.CONFIRMED)
