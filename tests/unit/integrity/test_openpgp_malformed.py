"""A "frankenstein" message: a good signature by the owner's key with more
OpenPGP data beside it (a second clearsigned block, an unsigned literal
message, stray packets after a detached signature). gpg still prints GOODSIG
and VALIDSIG for the signed part, and says what is wrong only in ERROR,
NODATA (and FAILURE, UNEXPECTED, BADARMOR) lines and its exit status: the
judge refuses on those lines alone."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gnupg
import pytest

from runtime.integrity.gpg_signer import stop_gpg_daemons
from runtime.integrity.openpgp import (
    Failure,
    OwnerGpg,
    SignatureResult,
    judge,
    judged,
    owner_gpg,
    statuses,
)

OWNER = "A" * 40
SUBKEY = "B" * 40
GOOD = ("NEWSIG", f"GOODSIG {OWNER[-16:]} owner", f"VALIDSIG {SUBKEY} d 1 0 4 0 22 8 01 {OWNER}")


def status_lines(*lines: str) -> list[tuple[str, list[str]]]:
    return statuses("gpg: noise\n" + "\n".join(f"[GNUPG:] {line}" for line in lines))


def test_the_good_transcript_alone_passes() -> None:
    assert judge(
        status_lines("PLAINTEXT 74 0", *GOOD, "TRUST_UNDEFINED 0 pgp"), frozenset({OWNER})
    ).ok


# Transcripts as gpg 2.2 prints them (the first two) and one per keyword.
@pytest.mark.parametrize(
    "lines",
    [
        # two clearsigned blocks, or one and an unsigned message: the second plaintext
        ("PLAINTEXT 74 0", *GOOD, "ERROR proc_pkt.plaintext 89_BAD_DATA"),
        # a detached signature followed by a literal data packet
        ("NODATA 4", *GOOD),
        ("PLAINTEXT 74 0", "NODATA 3", *GOOD),
        (*GOOD, "FAILURE verify 33554433"),
        ("UNEXPECTED 0", *GOOD),
        ("BADARMOR", *GOOD),
    ],
)
def test_an_error_line_refuses_a_good_signature(lines: tuple[str, ...]) -> None:
    result = judge(status_lines(*lines), frozenset({OWNER}))
    assert not result.ok
    assert result.failure is Failure.BAD_SIGNATURE
    keyword = next(
        line.split()[0] for line in lines if line not in GOOD and "PLAINTEXT" not in line
    )
    assert f"({keyword}" in result.reason  # gpg's line is named
    assert "not exactly one signed text" in result.reason


def test_an_error_without_a_signature_is_still_not_a_signature() -> None:
    result = judge(status_lines("NODATA 3"), frozenset({OWNER}))
    assert result.failure is Failure.NOT_SIGNATURE


def test_the_specific_reasons_still_come_first() -> None:
    bad = judge(status_lines("NEWSIG", "BADSIG 1 x", "ERROR x 1"), frozenset({OWNER}))
    assert bad.failure is Failure.BAD_SIGNATURE and "does not match" in bad.reason
    unknown = judge(
        status_lines("NEWSIG", "ERRSIG 1 22 8 00 1 9", "NO_PUBKEY 1", "ERROR x 1"),
        frozenset({OWNER}),
    )
    assert unknown.failure is Failure.NOT_OWNER


def test_gpg_words_in_the_reason_are_short_and_printable() -> None:
    result = judge(status_lines(*GOOD, "ERROR loc\x1b[2J " + "x" * 200), frozenset({OWNER}))
    assert "\x1b" not in result.reason
    assert len(result.reason) < 250


# -- real gpg ----------------------------------------------------------------------


@dataclass
class Signer:
    gpg: Any  # python-gnupg's GPG on the signing home
    home: str
    owner: str  # fingerprint
    owner_file: str

    def clearsign(self, text: str) -> str:
        signed = self.gpg.sign(text, keyid=self.owner, clearsign=True)
        assert signed.data, signed.stderr
        return str(signed)

    def detach_sign(self, data: bytes) -> str:
        signed = self.gpg.sign(data, keyid=self.owner, detach=True)
        assert signed.data, signed.stderr
        return str(signed)

    def unsigned_message(self, text: str) -> str:
        """An armored OpenPGP message holding only literal data: no signature."""
        gpg = shutil.which("gpg") or "gpg"
        out = subprocess.run(
            [gpg, "--batch", "--homedir", self.home, "--store", "--armor"],
            input=text.encode(),
            capture_output=True,
            timeout=30,
            check=True,
        )
        return out.stdout.decode()


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    base = tmp_path_factory.mktemp("gpg")
    home = base / "home"
    home.mkdir(mode=0o700)
    gpg = gnupg.GPG(gnupghome=str(home))
    params = gpg.gen_key_input(
        key_type="EDDSA",
        key_curve="ed25519",
        key_usage="sign",
        name_real="owner",
        name_email="owner@example.org",
    )
    key = gpg.gen_key(params.replace("%commit", "%no-protection\n%commit"))
    assert key.fingerprint, key.stderr
    owner_file = base / "owner.asc"
    owner_file.write_text(gpg.export_keys(str(key.fingerprint)))
    try:
        yield Signer(gpg, str(home), str(key.fingerprint), str(owner_file))
    finally:
        # gen_key started an agent for the signing home: stop it.
        stop_gpg_daemons(str(home), check=True)


@pytest.fixture
def owner(signer: Signer, tmp_path: Path) -> Iterator[OwnerGpg]:
    with owner_gpg(signer.owner_file, [signer.owner], work_dir=str(tmp_path)) as found:
        assert isinstance(found, OwnerGpg), found
        yield found


def _status_only(owner: OwnerGpg, result: Any) -> SignatureResult:
    """The judge on gpg's status lines alone, its exit status unseen."""
    return judge(statuses(result.stderr or ""), owner.pinned)


def test_one_clearsigned_block_passes(signer: Signer, owner: OwnerGpg) -> None:
    result = owner.gpg.decrypt(signer.clearsign("the challenge"))
    assert _status_only(owner, result).ok
    assert judged(result, owner.pinned, owner.timeout).ok


@pytest.mark.parametrize("extra", ["second clearsigned block", "unsigned message"])
def test_a_clearsigned_block_with_another_part_is_refused(
    signer: Signer, owner: OwnerGpg, extra: str
) -> None:
    signed = signer.clearsign("the challenge")
    added = (
        signer.clearsign("something else")
        if extra == "second clearsigned block"
        else signer.unsigned_message("something else\n")
    )
    result = owner.gpg.decrypt(signed + added)
    assert "VALIDSIG" in result.stderr  # gpg did call the first part good
    verdict = _status_only(owner, result)
    assert not verdict.ok
    assert verdict.failure is Failure.BAD_SIGNATURE
    assert "ERROR" in verdict.reason
    assert not judged(result, owner.pinned, owner.timeout).ok


def test_a_detached_signature_with_stray_data_is_refused(
    signer: Signer, owner: OwnerGpg, tmp_path: Path
) -> None:
    data = b"kexec listing\n"
    signature = tmp_path / "detached.sig"
    signature.write_text(signer.detach_sign(data))
    assert _status_only(owner, owner.gpg.verify_data(str(signature), data)).ok
    signature.write_text(signer.detach_sign(data) + signer.unsigned_message("stray\n"))
    result = owner.gpg.verify_data(str(signature), data)
    assert "VALIDSIG" in result.stderr
    verdict = _status_only(owner, result)
    assert not verdict.ok
    assert "NODATA" in verdict.reason


def test_plain_text_outside_the_armor_is_never_part_of_the_signed_text(
    signer: Signer, owner: OwnerGpg
) -> None:
    # gpg skips text outside the armor without a word (no status line to
    # refuse on): what counts is that its output is the signed text only,
    # which the recovery gate compares with the challenge.
    result = owner.gpg.decrypt(signer.clearsign("the challenge") + "appended, unsigned\n")
    assert _status_only(owner, result).ok
    assert b"appended" not in bytes(result.data)
    assert bytes(result.data).rstrip(b"\n") == b"the challenge"
