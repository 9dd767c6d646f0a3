"""The tests' own statement of when the verdict may say VERIFIED, written
apart from runtime/state/verdict.py so the truth-table tests check it."""

from __future__ import annotations

from runtime.state.verdict import BootState, Evidence, Secret, Token


def everything_checked(e: Evidence) -> bool:
    """Every check ran and passed (an opened recovery shell is the owner's own)."""
    return (
        e.tpm
        and e.measurements_match
        and e.secret is Secret.SHOWN
        and e.token in (Token.SUCCESS, Token.NOT_CONFIGURED)
        and e.boot is BootState.VERIFIED
        and not e.rollback_problem
        and not e.config_problems
        and not e.rollback_off
        and not e.basic
        and not e.root_changed
    )
