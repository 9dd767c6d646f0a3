"""What each /boot problem means for the owner decides whether signing is offered: by its
kind, never by its words."""

from __future__ import annotations

from runtime.integrity.boot_report import Problem, ProblemKind, kinds_of

#: the signed lists forged or damaged, another signer, an older /boot put back, or nothing
#: could be checked: what changed is unknown, so signing is never the answer
NEVER_RESIGNED = {
    Problem.SIGNATURE_BAD,
    Problem.SIGNATURE_NOT_OWNER,
    Problem.SIGNATURE_UNCHECKED,
    Problem.LIST_DAMAGED,
    Problem.UNREADABLE,
    Problem.ROLLED_BACK,
}


def test_every_problem_has_a_kind() -> None:
    assert all(isinstance(p.kind, ProblemKind) for p in Problem)


def test_problems_an_attacker_causes_are_never_resignable() -> None:
    for problem in NEVER_RESIGNED:
        assert problem.kind is not ProblemKind.RESIGNABLE, problem


def test_an_unknown_problem_is_unchecked_never_resignable() -> None:
    assert kinds_of(["no such problem"]) == {ProblemKind.UNCHECKED}
    assert kinds_of([]) == frozenset()
