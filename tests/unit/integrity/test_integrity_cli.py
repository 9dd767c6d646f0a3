"""The host-side commands: verify, sign (at the present counter) and trigger,
with the real gpg."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.integrity.__main__ import main
from runtime.integrity.boot_lists import ROLLBACK_FILE, format_rollback
from runtime.integrity.gpg_signer import stop_gpg_daemons
from tools.owner_key import OwnerKey


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    root = tmp_path / "boot"
    (root / "grub").mkdir(parents=True)
    (root / "grub" / "grub.cfg").write_text("menuentry A { linux /vmlinuz }\n")
    (root / "vmlinuz").write_bytes(b"kernel")
    # the firmware made the counter and signed once: /boot names it
    (root / ROLLBACK_FILE).write_bytes(format_rollback("1abcdef", 7))
    return root


def _sign_at_counter_7(boot: Path, owner_key: OwnerKey) -> int:
    """The sign command, as the owner, at the counter /boot names."""
    home, key = str(owner_key.home), str(owner_key.public)
    return main(["sign", str(boot), "--gnupg-home", home, "--owner-key", key, "--counter", "7"])


def test_sign_then_verify_with_and_without_the_counter(
    boot: Path, owner_key: OwnerKey, capsys: pytest.CaptureFixture[str]
) -> None:
    key = str(owner_key.public)
    assert main(["verify", str(boot), "--owner-key", key]) == 1
    assert "signature missing" in capsys.readouterr().out
    assert _sign_at_counter_7(boot, owner_key) == 0
    assert "VERIFIED" in capsys.readouterr().out
    assert main(["verify", str(boot), "--owner-key", key, "--counter", "7"]) == 0
    assert "at rollback counter 7" in capsys.readouterr().out
    assert main(["verify", str(boot), "--owner-key", key]) == 0
    assert "not checked" in capsys.readouterr().out
    assert main(["verify", str(boot), "--owner-key", key, "--counter", "8"]) == 1
    assert "counter was 7" in capsys.readouterr().out
    # a changed kernel, then the OS's trigger names it
    (boot / "vmlinuz").write_bytes(b"kernel 2")
    assert main(["trigger", str(boot), "--phase", "post", "--package", "linux-image-x"]) == 0
    capsys.readouterr()
    assert main(["verify", str(boot), "--owner-key", key, "--counter", "7"]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "vmlinuz" in out and "sign /boot again" in out
    assert "kexec_package_trigger_post.txt" in out
    text = (boot / "kexec_package_trigger_post.txt").read_text()
    assert text.startswith("CHANGED_FILES=./vmlinuz\nUPDATE_INITRAMFS_PACKAGE=linux-image-x\n")
    # signing again removes the trigger and verifies
    assert _sign_at_counter_7(boot, owner_key) == 0
    assert not (boot / "kexec_package_trigger_post.txt").exists()


def test_sign_refuses_without_a_counter(
    tmp_path: Path, owner_key: OwnerKey, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "vmlinuz").write_bytes(b"k")
    code = main(
        [
            "sign",
            str(tmp_path),
            "--gnupg-home",
            str(owner_key.home),
            "--owner-key",
            str(owner_key.public),
            "--counter",
            "1",
        ]
    )
    assert code == 1 and "sign once in the firmware first" in capsys.readouterr().err


def test_trigger_format_round_trip_and_junk() -> None:
    from runtime.integrity.package_trigger import format_trigger, parse_trigger

    data = format_trigger(["./vmlinuz-6.1", "./initrd.img-6.1"], "linux-image-6.1", ["dpkg: x"])
    t = parse_trigger("kexec_package_trigger_pre.txt", data.decode())
    assert t.phase == "pre" and t.changed_files == ("./vmlinuz-6.1", "./initrd.img-6.1")
    assert t.package == "linux-image-6.1" and t.notes == ("dpkg: x",)
    odd = parse_trigger("kexec_package_trigger_post.txt", 'CHANGED_FILES="unclosed\n\x00junk\n')
    assert odd.changed_files == ("unclosed",) and odd.notes == ("\x00junk",)


def test_signer_starts_its_own_agent_in_a_fresh_home(owner_key: OwnerKey, tmp_path: Path) -> None:
    """As in the firmware: a new RAM home with the imported secret key and no
    gpg-agent running; the PIN goes through loopback pinentry."""
    import subprocess

    from runtime.integrity.gpg_signer import GpgSigner
    from runtime.integrity.openpgp import verify_detached

    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    secret = owner_key.export_secret(tmp_path / "secret.asc")
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--import", str(secret)],
        check=True,
        timeout=60,
        capture_output=True,
    )
    stop_gpg_daemons(str(home), check=True)
    asked: list[int] = []

    def pin(attempt: int, last: str) -> bytearray:
        asked.append(attempt)
        return bytearray(b"any")

    try:
        signature = GpgSigner(str(home), ask_pin=pin).sign(b"listing\n")
    finally:
        stop_gpg_daemons(str(home))
    assert asked == [1]
    assert verify_detached(signature, b"listing\n", str(owner_key.public)).ok


def test_a_wrong_pin_is_asked_again_then_refused_plainly(tmp_path: Path) -> None:
    import subprocess

    from runtime.integrity.gpg_signer import GpgSigner
    from runtime.integrity.sign_boot import SigningError

    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    spec = (
        "Key-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: sign\nName-Real: PIN Owner\n"
        "Passphrase: right pin\nExpire-Date: 0\n%commit\n"
    )
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--gen-key"],
        input=spec,
        text=True,
        check=True,
        timeout=120,
        capture_output=True,
    )
    given: list[tuple[int, str]] = []

    def pin(attempt: int, last: str) -> bytearray:
        given.append((attempt, last))
        return bytearray(b"right pin" if attempt == 2 else b"wrong")

    try:
        assert GpgSigner(str(home), ask_pin=pin).sign(b"x").startswith(b"-----BEGIN PGP")
        assert given == [(1, ""), (2, "the PIN was wrong")]
        # a new agent, as each signing in the firmware has (no cached passphrase)
        stop_gpg_daemons(str(home))
        with pytest.raises(SigningError, match="refused 3 times"):
            GpgSigner(str(home), ask_pin=lambda a, last: bytearray(b"wrong")).sign(b"x")
    finally:
        stop_gpg_daemons(str(home))
