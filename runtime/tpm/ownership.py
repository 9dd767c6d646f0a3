"""TPM reset (clear), taking ownership, the dictionary-attack state and
clearing its lockout.

Clearing goes through the platform hierarchy where the firmware leaves it
usable with an empty authorization (coreboot does), and through the lockout
hierarchy otherwise: OVMF leaves the platform hierarchy enabled with a random
authorization, so on such boards the owner must keep the lockout passphrase.
This runtime therefore sets the lockout authorization to a passphrase the
owner knows instead of throwing it away.
"""

from __future__ import annotations

from dataclasses import dataclass

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_CAP, TPM2_PT
from tpm2_pytss.types import TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE, TPMT_PUBLIC_PARMS

from runtime.tpm import handles
from runtime.tpm.connection import Tpm
from runtime.tpm.errors import (
    LockoutPassphraseBlocked,
    TpmError,
    TpmLockedOut,
    WrongLockoutPassphrase,
    WrongOwnerPassphrase,
    WrongPassphrase,
    translated,
)
from runtime.tpm.templates import primary_template

# Dictionary-attack policy, as Heads sets it: 10 failures, one forgiven per hour;
# after a failed lockout passphrase, the lockout hierarchy waits for a reboot.
DA_MAX_TRIES = 10
DA_RECOVERY_SECONDS = 3600
DA_LOCKOUT_RECOVERY_SECONDS = 0

#: the longest passphrase this runtime sets on a hierarchy (a SHA-256 digest's
#: size): anything longer cannot be right, and tpm2-pytss fails on it above 64
AUTH_MAX_BYTES = 32
_PERMANENT_LOCKOUT_AUTH_SET = 1 << 2
_PERMANENT_IN_LOCKOUT = 1 << 9
_STARTUP_PH_ENABLE = 1 << 0


@dataclass(frozen=True)
class DaState:
    """The dictionary-attack counters, as the TPM reports them."""

    failures: int
    max_tries: int
    recovery_seconds: int
    lockout_recovery_seconds: int
    in_lockout: bool
    platform_enabled: bool
    #: the lockout hierarchy has a passphrase (else it is empty: a TPM never owned)
    lockout_auth_set: bool = False

    def describe(self) -> str:
        if self.in_lockout:
            return (
                f"LOCKED OUT after {self.failures} failed passphrases; one failure is "
                f"forgiven every {self.recovery_seconds} s while powered on"
            )
        return f"{self.failures} of {self.max_tries} allowed passphrase failures used"


def _properties(tpm: Tpm, first: int, count: int) -> dict[int, int]:
    with translated("Reading TPM properties"):
        _, data = tpm.esapi.get_capability(TPM2_CAP.TPM_PROPERTIES, first, count)
    return {int(p.property): int(p.value) for p in data.data.tpmProperties}


def da_state(tpm: Tpm) -> DaState:
    props = _properties(tpm, int(TPM2_PT.PERMANENT), 2)
    da = _properties(tpm, int(TPM2_PT.LOCKOUT_COUNTER), 4)
    return DaState(
        failures=da.get(int(TPM2_PT.LOCKOUT_COUNTER), 0),
        max_tries=da.get(int(TPM2_PT.MAX_AUTH_FAIL), 0),
        recovery_seconds=da.get(int(TPM2_PT.LOCKOUT_INTERVAL), 0),
        lockout_recovery_seconds=da.get(int(TPM2_PT.LOCKOUT_RECOVERY), 0),
        in_lockout=bool(props.get(int(TPM2_PT.PERMANENT), 0) & _PERMANENT_IN_LOCKOUT),
        platform_enabled=bool(props.get(int(TPM2_PT.STARTUP_CLEAR), 0) & _STARTUP_PH_ENABLE),
        lockout_auth_set=bool(props.get(int(TPM2_PT.PERMANENT), 0) & _PERMANENT_LOCKOUT_AUTH_SET),
    )


def clear_lockout(tpm: Tpm, lockout_auth: bytes | None) -> None:
    """End the dictionary-attack lockout and zero the failure count
    (TPM2_DictionaryAttackLockReset): nothing else in the TPM changes.

    ``lockout_auth`` is the lockout passphrase (None: the TPM has none, as
    before its first ownership). Sent in the salted HMAC session, so it never
    crosses the bus in clear. WrongLockoutPassphrase when it is wrong (the TPM
    then refuses the lockout passphrase for its lockoutRecovery time), and
    LockoutPassphraseBlocked while that wait from an earlier wrong one lasts.
    """
    # Neither is tried (no rc): a try that cannot succeed would cost the wait.
    untried = None
    if lockout_auth is not None and len(lockout_auth) > AUTH_MAX_BYTES:
        untried = "is longer than any TPM passphrase"
    elif not lockout_auth and _lockout_auth_set(tpm):
        untried = "is needed, and an empty one cannot be right"
    if untried:
        raise WrongLockoutPassphrase(
            f"The lockout passphrase {untried}; it was not tried.",
            summary="The lockout passphrase was not tried: it cannot be right.",
            hint="Type the passphrase set at the TPM's last reset.",
        )
    tpm.esapi.tr_set_auth(ESYS_TR.LOCKOUT, lockout_auth or b"")
    try:
        with translated("Clearing the dictionary-attack lockout", auth="lockout passphrase"):
            tpm.esapi.dictionary_attack_lock_reset(ESYS_TR.LOCKOUT, session1=tpm.hmac_session())
    except WrongPassphrase as exc:
        tpm.flush_sessions()  # a refused authorization may end the session
        raise WrongLockoutPassphrase(
            f"{exc.message} (dictionary-attack lock reset)", rc=exc.rc
        ) from exc
    except TpmLockedOut as exc:
        # TPM_RC_LOCKOUT here is the lockout hierarchy's own wait, not the DA lockout
        tpm.flush_sessions()
        raise LockoutPassphraseBlocked(
            f"{exc.message}: the lockout passphrase is blocked after an earlier wrong one",
            rc=exc.rc,
        ) from exc
    finally:
        tpm.esapi.tr_set_auth(ESYS_TR.LOCKOUT, b"")


def _clear_with_platform(tpm: Tpm) -> bool:
    """Try TPM2_Clear through the platform hierarchy with an empty authorization."""
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    try:
        with translated("Clearing the TPM (platform)"):
            tpm.esapi.clear_control(ESYS_TR.PLATFORM, False, session1=tpm.hmac_session())
            tpm.esapi.clear(ESYS_TR.PLATFORM, session1=tpm.hmac_session())
    except TpmError:
        tpm.flush_sessions()  # a failed authorization may end the session
        return False
    return True


def _platform_open(tpm: Tpm) -> bool:
    """Whether the platform hierarchy takes an empty authorization: probed by
    setting its authorization to empty, which changes nothing when it is empty
    and fails otherwise (OVMF sets a random one). Platform failures are not
    counted by the dictionary-attack protection."""
    tpm.esapi.tr_set_auth(ESYS_TR.PLATFORM, b"")
    try:
        with translated("Probing the platform hierarchy"):
            tpm.esapi.hierarchy_change_auth(ESYS_TR.PLATFORM, b"", session1=tpm.hmac_session())
    except TpmError:
        tpm.flush_sessions()
        return False
    return True


def clear_needs_lockout_passphrase(tpm: Tpm) -> bool:
    """Whether clearing needs the current lockout passphrase, told without a
    try that could fail: one wrong lockout passphrase locks the lockout
    hierarchy until the next reboot, so it is asked before anything else."""
    return not _platform_open(tpm) and _lockout_auth_set(tpm)


def _lockout_auth_set(tpm: Tpm) -> bool:
    props = _properties(tpm, int(TPM2_PT.PERMANENT), 1)
    return bool(props.get(int(TPM2_PT.PERMANENT), 0) & _PERMANENT_LOCKOUT_AUTH_SET)


def clear_tpm(tpm: Tpm, lockout_auth: bytes | None = None) -> str:
    """Clear the TPM: every owner key, sealed secret and owner NV index is destroyed.

    Returns the hierarchy used ("platform" or "lockout"). Without a usable
    platform hierarchy, ``lockout_auth`` must be the current lockout passphrase
    (empty on a TPM that was never owned).
    """
    if _clear_with_platform(tpm):
        used = "platform"
    else:
        # the platform clear just failed: only whether a lockout passphrase is set matters
        if lockout_auth is None and _lockout_auth_set(tpm):
            # an empty try would fail and lock the lockout hierarchy: never made
            raise WrongPassphrase(
                "Clearing the TPM needs the current lockout passphrase.",
                hint="Enter the TPM passphrase set when the TPM was last reset.",
            )
        tpm.esapi.tr_set_auth(ESYS_TR.LOCKOUT, lockout_auth or b"")
        try:
            with translated("Clearing the TPM", auth="lockout passphrase"):
                tpm.esapi.clear(ESYS_TR.LOCKOUT, session1=tpm.hmac_session())
        except WrongPassphrase as exc:
            raise WrongPassphrase(
                "The firmware does not allow clearing the TPM, and the lockout passphrase "
                "is wrong.",
                rc=exc.rc,
                hint="Enter the TPM lockout passphrase set when the TPM was last reset. "
                "After one wrong try the TPM refuses it until the next reboot.",
            ) from exc
        used = "lockout"
    tpm.forget_primary()
    return used


def take_ownership(
    tpm: Tpm, owner_auth: bytes, lockout_auth: bytes | None = None, *, key_type: str = "ecc"
) -> None:
    """Set the owner, endorsement and lockout passphrases and create the storage key
    of ``key_type`` ("rsa" or "ecc", CONFIG_PRIMARY_KEY_TYPE).

    Must follow ``clear_tpm`` (all authorizations empty). ``lockout_auth``
    defaults to the owner passphrase, so the owner can always clear the TPM.
    """
    primary_template(key_type)  # an unknown type fails before anything is changed
    lockout = owner_auth if lockout_auth is None else lockout_auth
    for value, what in ((owner_auth, "owner"), (lockout, "lockout")):
        if not 0 < len(value) <= AUTH_MAX_BYTES:
            raise ValueError(f"the TPM {what} passphrase must have 1 to 32 bytes")
    session = tpm.hmac_session()
    tpm.esapi.tr_set_auth(ESYS_TR.LOCKOUT, b"")
    with translated("Setting the dictionary-attack policy", auth="lockout passphrase"):
        tpm.esapi.dictionary_attack_parameters(
            DA_MAX_TRIES, DA_RECOVERY_SECONDS, DA_LOCKOUT_RECOVERY_SECONDS, session1=session
        )
    for hierarchy, value, name in (
        (ESYS_TR.LOCKOUT, lockout, "lockout"),
        (ESYS_TR.OWNER, owner_auth, "owner"),
        (ESYS_TR.ENDORSEMENT, owner_auth, "endorsement"),
    ):
        tpm.esapi.tr_set_auth(hierarchy, b"")
        with translated(f"Setting the TPM {name} passphrase", auth=f"{name} passphrase"):
            tpm.esapi.hierarchy_change_auth(hierarchy, value, session1=session)
        tpm.esapi.tr_set_auth(hierarchy, value)
    create_storage_key(tpm, owner_auth, key_type=key_type)


def create_storage_key(tpm: Tpm, owner_auth: bytes, *, key_type: str = "ecc") -> None:
    """Create the storage primary (``key_type`` "rsa": RSA 2048, "ecc": NIST P-256,
    as `tpm2 createprimary -G` makes them) and make it persistent at Heads' handle."""
    template = primary_template(key_type)
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)
    with translated("Creating the TPM storage key", auth="TPM owner passphrase", owner_auth=True):
        primary, made, _, _, _ = tpm.esapi.create_primary(
            TPM2B_SENSITIVE_CREATE(),
            template,
            ESYS_TR.OWNER,
            session1=tpm.hmac_session(),
        )
        try:
            if made.publicArea.marshal() != _expected_public(template, made):
                raise TpmError(
                    "CreatePrimary returned another key than the template's",
                    summary="The TPM made a storage key other than the one asked for.",
                    hint="If it happens again, the TPM (or what answers in its "
                    "place) is not to be trusted.",
                )
            persistent = tpm.esapi.evict_control(
                ESYS_TR.OWNER, primary, handles.PRIMARY_KEY, session1=tpm.hmac_session()
            )
            tpm.esapi.tr_close(persistent)
        finally:
            tpm.esapi.flush_context(primary)
    tpm.forget_primary()


def check_owner_passphrase(tpm: Tpm, owner_auth: bytes) -> None:
    """WrongOwnerPassphrase unless ``owner_auth`` is the owner passphrase.

    Nothing in the TPM changes: TPM2_PolicySecret only proves knowledge of the
    owner authorization to a policy session (restarted at its next use). So a
    typo is caught before anything else (a HOTP token) is changed.
    """
    if len(owner_auth) > AUTH_MAX_BYTES:
        raise WrongOwnerPassphrase("The owner passphrase is longer than any TPM passphrase.")
    tpm.esapi.tr_set_auth(ESYS_TR.OWNER, owner_auth)
    try:
        with translated(
            "Checking the TPM owner passphrase", auth="TPM owner passphrase", owner_auth=True
        ):
            tpm.esapi.policy_secret(
                ESYS_TR.OWNER, tpm.policy_session(), b"", b"", b"", 0, session1=tpm.hmac_session()
            )
    except TpmError:
        tpm.discard_policy_session()
        raise
    finally:
        tpm.esapi.tr_set_auth(ESYS_TR.OWNER, b"")


def _expected_public(template: TPM2B_PUBLIC, made: TPM2B_PUBLIC) -> bytes:
    """The template with the key the TPM made filled in: all but the unique
    field (the public key itself) must be what was asked for."""
    expected = TPM2B_PUBLIC.unmarshal(template.marshal())[0]
    expected.publicArea.unique = made.publicArea.unique
    return bytes(expected.publicArea.marshal())


def key_type_supported(tpm: Tpm, key_type: str) -> bool:
    """Whether the TPM can make a storage key of ``key_type`` (TPM2_TestParms),
    asked before a reset clears anything."""
    template = primary_template(key_type).publicArea
    try:
        tpm.esapi.test_parms(TPMT_PUBLIC_PARMS(type=template.type, parameters=template.parameters))
    except TSS2_Exception:
        return False
    return True


def reset_tpm(
    tpm: Tpm,
    owner_auth: bytes,
    current_lockout_auth: bytes | None = None,
    new_lockout_auth: bytes | None = None,
    *,
    key_type: str = "ecc",
) -> str:
    """Clear the TPM and take ownership again with a storage key of ``key_type``;
    returns the hierarchy that cleared it. The new passphrases and the key type
    are checked first: a TPM is never cleared for what it would then refuse."""
    if not key_type_supported(tpm, key_type):
        raise ValueError(
            f"this TPM cannot make a {key_type.upper()} storage key (CONFIG_PRIMARY_KEY_TYPE)"
        )
    for value in (owner_auth, new_lockout_auth or owner_auth):
        if not 0 < len(value) <= AUTH_MAX_BYTES:
            raise ValueError("a TPM passphrase must have 1 to 32 bytes")
    if current_lockout_auth is not None and len(current_lockout_auth) > AUTH_MAX_BYTES:
        raise WrongPassphrase(
            "The current passphrase is longer than any TPM passphrase.",
            hint="Type the passphrase set at the TPM's last reset.",
        )
    used = clear_tpm(tpm, current_lockout_auth)
    try:
        take_ownership(tpm, owner_auth, new_lockout_auth, key_type=key_type)
    except TpmError as err:
        raise OwnershipIncomplete(
            f"after the clear: {err.message}",
            rc=err.rc,
            summary=f"{OwnershipIncomplete.summary} What failed: {err.summary}",
        ) from err
    return used


class OwnershipIncomplete(TpmError):
    """The TPM was cleared, and taking ownership again did not finish."""

    summary = (
        "The TPM was cleared (its old secrets are gone), but taking ownership did "
        "not finish, so it has no storage key yet."
    )
    hint = (
        "Reset the TPM again. If your old passphrase is refused, use the new one: it "
        "may already be set."
    )
