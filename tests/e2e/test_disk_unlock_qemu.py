"""The Disk Unlock Key's story on the qemu-swtpm board, over the serial
console, with the LUKS test OS disk (tools/make_os_disk.py luks=True: a LUKS2
container at /dev/vda3 and a LUKS1 one at /dev/vda4, the recovery passphrase
in slot 0, and an OS initrd that opens what its crypttab names, Debian
cryptroot's way, asking on the console for a key file "none").

1. An owned machine (TOTP enrolled, /boot signed, a default entry) whose OS
   asks for the recovery passphrase at each boot.
2. The DUK set up from the TPM options (both disks, the recovery passphrase,
   the DUK passphrase twice, the owner passphrase, /boot signed with its
   files). The default then boots in the same power-on without the key (a
   notice: it is used from the next one), the OS's questions get wrong
   answers, and the RAM the OS was handed holds none of the passphrases
   typed for the setup.
3. After a power cycle the DUK passphrase is asked and the OS opens both
   containers through the DUK's slots (31 and 7) without asking. The test OS
   prints the key it was given (in hex, a test aid): no form of it is in the
   firmware's part of the console, in any file of the machine (the disk image
   with its /boot, the firmware variables, the TPM state) or in the firmware
   image, and the RAM the OS was handed holds neither the DUK passphrase nor
   the recovery passphrase.
4. Wrong DUK passphrases: three, then the way forward, and the OS asks for
   the recovery passphrase, which opens slot 0.
5. The LUKS2 container's header replaced by another container's: the key
   stays sealed and the screen names /dev/vda3 (the boot may go on without
   it: the OS then asks for the recovery passphrase).
6. Other owner settings in the image (PCR 9 differs): the key stays sealed
   naming PCR 9 before any passphrase is asked, and the recovery passphrase
   opens the disks.
7. "Reset the TPM" from the TPM options (the owner passphrase, a new one
   typed, no new TOTP secret): the reset says the DUK is gone with it. At the
   next power-on the start says the TPM no longer holds /boot's rollback
   counter and advises an owner who reset it to sign /boot again: the owner
   continues to the main menu and signs /boot from the options (a new
   counter, the new owner passphrase). If the saved default is refused next
   (saved with the TPM's old storage key), the owner saves it again from the
   OS menu, as the screen says. The boot then says the TPM no longer holds
   the key (and, no TOTP having vouched for the firmware, that a TOTP secret
   comes before setting it up again), asks no DUK passphrase, and the
   recovery passphrase opens slot 0 of both containers.

Each RAM search is after the OS powered off (QEMU keeps the stopped machine,
tests/e2e/guest_ram.py) and first proves itself: a canary word on the
firmware kernel's command line, which that kernel keeps, is found.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import BOARD, build
from tests.e2e.console_steps import (
    MAIN,
    SIGN,
    TARGET,
    enrol_secret,
    make_first_entry_default,
    power_off,
    reset_tpm_from_the_options,
    set_up_disk_unlock,
    sign_from_the_options,
    type_line,
    words,
)
from tests.e2e.guest_ram import Needles, dump_after_power_off, found_in, places, qemu_args
from tests.leakcheck import secret_forms
from tools import make_os_disk as osd
from tools.board_console import Boot, boot
from tools.owner_key import OwnerKey

pytestmark = [pytest.mark.qemu, pytest.mark.xdist_group("qemu"), pytest.mark.timeout(2400)]
FIRST_SCREEN = 400
OWNER_PASSPHRASE = "disk owner passphrase 1"
#: Random-looking, so that any guest_ram.PIECE bytes of it found in RAM are this
#: passphrase (a piece is what a reused input buffer would keep).
DUK_PASSPHRASE = "Hv5rTq9wKm3xBz7pNc2dLs"
#: The owner passphrase set by the TPM reset (the module's last power-ons).
NEW_OWNER_PASSPHRASE = "Rm6tVc3xQp8kWz2nJd5bLg"
SETTINGS = b'export CONFIG_BOARD_NAME="QEMU disk unlock"\n'
#: the firmware's setup: two key slots added, two 16 MiB header backups hashed
SETUP = 600
#: Heads' Disk Unlock Key: 128 random bytes
KEY_BYTES = 128
#: What the OS is typed when its questions must not be answered (step 2).
NOT_THE_PASSPHRASE = "wrong"


@pytest.fixture(scope="module")
def initrd_duk(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    return build(tmp_path_factory.mktemp("build-duk"), SETTINGS, owner_key, signing=True)


@pytest.fixture(scope="module")
def luks_disk(machine: Path) -> Path:
    return osd.make_os_disk(machine / "luks-disk.img", luks=True).image


def canary_of(machine: Path) -> str:
    """The machine's canary word, on the firmware kernel's command line at
    every power-on: that kernel keeps its command line and never frees it, so
    a RAM dump that holds the word holds the firmware's RAM. One word for the
    machine's whole life: PCR 9 measures the command line, and the DUK is
    sealed to PCR 9."""
    path = machine / "canary"
    if not path.exists():
        path.write_text("canary" + secrets.token_hex(12))
    return path.read_text()


def qmp_socket(machine: Path) -> Path:
    return machine / "qmp.sock"


def start(machine: Path, initrd: Path, disk: Path, keep_ram: bool = False) -> Boot:
    """A power-on; ``keep_ram``: QEMU keeps the machine, stopped, once it
    powers off, for scan_ram_after_the_os (and only quits from there)."""
    running = boot(BOARD, machine, initrd)
    running.instance.disks = [disk]
    running.instance.extra_cmdline = f"test.canary={canary_of(machine)}"
    if keep_ram:
        running.instance.extra_args = qemu_args(qmp_socket(machine))
    return running.start()


def answer_the_os(running: Boot, passphrase: str) -> None:
    """The OS asks for each container's passphrase in turn (its own crypttab)."""
    for _ in osd.LUKS_CONTAINERS:
        running.wait_for_console(r"OS-TARGET: passphrase for \S+", TARGET)
        type_line(running, passphrase)


def refuse_the_os(running: Boot) -> None:
    """Every question of the OS answered wrongly: three per container."""
    for asked in range(1, 3 * len(osd.LUKS_CONTAINERS) + 1):
        running.wait_for_console(rf"(?:OS-TARGET: passphrase for \S+[\s\S]*?){{{asked}}}", TARGET)
        type_line(running, NOT_THE_PASSPHRASE)


def opened(running: Boot) -> dict[str, str]:
    """{crypttab name: key slot} as the OS reports them once it is done."""
    running.wait_for_console(r"OS-TARGET: done", TARGET)
    console = running.console_text()
    running.wait_exit(120)
    return dict(re.findall(r"OS-TARGET: opened (\S+) slot (\d+)", console))


# --- what is left in RAM, in files, on the console ----------------------------


@dataclass
class RamScan:
    """What the RAM the OS was handed held, once the OS had powered off."""

    canary_found: bool
    #: {needle's name: the bytes around each place it was found (what held it)}
    leaks: dict[str, list[bytes]]


def passphrase_needles(random_looking: dict[str, str], worded: dict[str, str]) -> Needles:
    """What to search RAM for: every piece of a random-looking passphrase, in
    UTF-8 and UTF-16; a passphrase made of words only whole (its words, e.g.
    "recovery passphrase", are in the runtime's own texts)."""
    needles = Needles()
    for name, value in random_looking.items():
        needles.pieced[name] = value.encode()
        needles.pieced[f"{name} (UTF-16)"] = value.encode("utf-16-le")
    for name, value in worded.items():
        needles.whole[name] = value.encode()
        needles.whole[f"{name} (UTF-16)"] = value.encode("utf-16-le")
    return needles


def scan_ram_after_the_os(running: Boot, machine: Path, dump: Path, needles: Needles) -> RamScan:
    """Once the OS (started with keep_ram) is done and powered off: its RAM,
    dumped, searched; QEMU then quits."""
    running.wait_for_console(r"OS-TARGET: done", TARGET)
    ram = dump_after_power_off(qmp_socket(machine), dump)
    dump.unlink()
    return RamScan(bool(places(ram, canary_of(machine).encode())), found_in(ram, needles))


def key_forms(key: bytes) -> dict[str, bytes]:
    """The ways the key could be written down: tests/leakcheck.py's forms (raw,
    hex, base32, base64, repr) and hex with spaces as a hex dump has it."""
    forms = {f"form {i}": form for i, form in enumerate(secret_forms(key))}
    forms["hex with spaces"] = key.hex(" ").encode()
    forms["HEX with spaces"] = key.hex(" ").upper().encode()
    return forms


def holding(data: bytes, forms: dict[str, bytes]) -> list[str]:
    """Which forms ``data`` holds, each with its first offset."""
    return [f"{name} at byte {data.find(form)}" for name, form in forms.items() if form in data]


@pytest.fixture(scope="module")
def owned(machine: Path, initrd_duk: Path, luks_disk: Path) -> dict[str, str]:
    with start(machine, initrd_duk, luks_disk) as first:
        first.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        enrol_secret(first, OWNER_PASSPHRASE, None)
        first.wait_for_screen(MAIN, 120)
        sign_from_the_options(first, first=True, owner_passphrase=OWNER_PASSPHRASE)
        first.press("enter")
        first.wait_for_screen(MAIN, 120)
        # saving a default offers the DUK (the disks are encrypted): not now
        make_first_entry_default(first, "Debian GNU/Linux", disk_unlock_offer="n")
        answer_the_os(first, osd.DISK_RECOVERY_PASSPHRASE)
        return opened(first)


def test_without_a_duk_the_os_asks_for_the_recovery_passphrase(owned: dict[str, str]) -> None:
    assert sorted(owned.values()) == ["0", "0"], owned


@dataclass
class SetUp:
    """The setup's power-on: its last page, in words; the boot that followed
    it in the same power-on (the notice that the new key is used from the
    next power-on, in words, and the console); what the RAM the OS was
    handed held."""

    done: str
    later: str
    console: str
    ram: RamScan


@pytest.fixture(scope="module")
def duk_set_up(
    machine: Path,
    initrd_duk: Path,
    luks_disk: Path,
    owned: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> SetUp:
    with start(machine, initrd_duk, luks_disk, keep_ram=True) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)

        def both(which: str) -> str:
            assert "/dev/vda3" in which and "/dev/vda4" in which, which
            return "a"

        passphrases = (osd.DISK_RECOVERY_PASSPHRASE, DUK_PASSPHRASE, OWNER_PASSPHRASE)
        _, _, done = set_up_disk_unlock(running, both, passphrases, SETUP)
        # The default boots in this power-on too, without the key (it is used
        # from the next one). The OS's questions get wrong answers: the RAM it
        # is handed must then hold no passphrase this power-on was typed.
        running.press("d")
        later = words(running.wait_for_screen("The OS asks for the recovery passphrase.", 300))
        running.press("enter")
        refuse_the_os(running)
        ram = scan_ram_after_the_os(
            running,
            machine,
            tmp_path_factory.mktemp("ram-setup") / "ram.elf",
            passphrase_needles(
                {"DUK passphrase": DUK_PASSPHRASE},
                {
                    "recovery passphrase": osd.DISK_RECOVERY_PASSPHRASE,
                    "owner passphrase": OWNER_PASSPHRASE,
                },
            ),
        )
        running.wait_exit(120)
        console = running.console_text()
    return SetUp(done, later, console, ram)


def test_setup_seals_to_the_firmware_modules_and_header_pcrs(duk_set_up: SetUp) -> None:
    assert "Sealed to PCRs 0, 1, 2, 3, 4, 5, 6, 7, 9" in duk_set_up.done, duk_set_up.done


def test_the_setup_power_on_hands_the_os_no_passphrase(duk_set_up: SetUp) -> None:
    assert "used from the next one" in duk_set_up.later, duk_set_up.later
    # the OS ran: it asked, was refused, and opened nothing
    not_opened = re.findall(r"OS-TARGET: not opened (\S+) wrong passphrase", duk_set_up.console)
    assert sorted(not_opened) == sorted(c.name for c in osd.LUKS_CONTAINERS), not_opened
    assert duk_set_up.ram.canary_found, "the scan does not see the firmware kernel's RAM"
    assert duk_set_up.ram.leaks == {}


@dataclass
class DukPowerOn:
    """The power-on that boots with the DUK: the passphrase's prompt in words,
    the OS's report, the console's bytes, the key as the test OS printed it,
    the RAM the OS was handed and what of the key the machine's files hold."""

    prompt: str
    slots: dict[str, str]
    console: bytes
    key: bytes
    ram: RamScan
    files: dict[str, list[str]]


@pytest.fixture(scope="module")
def duk_power_on(
    machine: Path,
    initrd_duk: Path,
    luks_disk: Path,
    duk_set_up: SetUp,
    tmp_path_factory: pytest.TempPathFactory,
) -> DukPowerOn:
    with start(machine, initrd_duk, luks_disk, keep_ram=True) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        running.press("d")
        prompt = words(running.wait_for_screen("DUK passphrase", 300))
        type_line(running, DUK_PASSPHRASE)
        # The key itself is in this RAM by design: the OS's initrd, with the
        # firmware's key cpio appended, holds /secret.key, cryptsetup read
        # it, and the test OS printed it. So only the passphrases, which the
        # OS never had, are searched for. The recovery passphrase is typed in
        # no part of this power-on: found, it would have come from something
        # the setup stored (on /boot, in the TPM) and this boot read back.
        ram = scan_ram_after_the_os(
            running,
            machine,
            tmp_path_factory.mktemp("ram-duk") / "ram.elf",
            passphrase_needles(
                {"DUK passphrase": DUK_PASSPHRASE},
                {"recovery passphrase": osd.DISK_RECOVERY_PASSPHRASE},
            ),
        )
        slots = opened(running)  # QEMU quit after the dump
        console = bytes(running.raw)
    printed = re.search(rb"OS-TARGET: key-hex ([0-9a-f]*)", console)
    key = bytes.fromhex(printed.group(1).decode()) if printed else b""
    files: dict[str, list[str]] = {}
    if key:
        forms = key_forms(key)
        # every file the machine has after its power-off: the disk image (its
        # /boot partition and the LUKS containers), the firmware variables, the
        # TPM state; then the firmware image, as built and decompressed
        for path in sorted(p for p in machine.rglob("*") if p.is_file()):
            files[str(path)] = holding(path.read_bytes(), forms)
        files[str(initrd_duk)] = holding(initrd_duk.read_bytes(), forms)
        unpacked = subprocess.run(
            ["zstd", "-dc", str(initrd_duk)], capture_output=True, check=True, timeout=300
        ).stdout
        files[f"{initrd_duk} (decompressed)"] = holding(unpacked, forms)
    return DukPowerOn(prompt, slots, console, key, ram, files)


def test_the_duk_passphrase_opens_the_disks_without_the_os_asking(
    duk_power_on: DukPowerOn,
) -> None:
    prompt = duk_power_on.prompt
    assert "TOTP:" in prompt and "Attempt 1 of 3" in prompt, prompt
    assert sorted(duk_power_on.slots.values()) == ["31", "7"], duk_power_on.slots
    # under the OS's own names: the crypttab overrides signed with the key
    # came from its initrd's cryptroot/crypttab, not Heads' luks-<UUID> lines
    assert set(duk_power_on.slots) == {c.name for c in osd.LUKS_CONTAINERS}, duk_power_on.slots
    console = duk_power_on.console
    assert b"OS-TARGET: passphrase for" not in console
    assert b"OS-TARGET: secret.key 128 bytes" in console
    # typed with echo off
    assert DUK_PASSPHRASE.encode() not in console


def test_the_key_is_not_on_the_firmwares_console(duk_power_on: DukPowerOn) -> None:
    key, console = duk_power_on.key, duk_power_on.console
    assert len(key) == KEY_BYTES, "the test OS printed no key (OS-TARGET: key-hex)"
    # the firmware's part: everything before the OS's first line, the OS
    # kernel's own messages (its command line) included
    firmware, os_part = console.split(b"OS-TARGET:", 1)
    assert b"stage=kexec" in firmware  # the firmware's part reaches its hand-over
    assert key.hex().encode() in os_part  # the search finds what is there
    assert holding(firmware, key_forms(key)) == []


def test_no_file_holds_the_key(duk_power_on: DukPowerOn, luks_disk: Path) -> None:
    assert len(duk_power_on.key) == KEY_BYTES, "the test OS printed no key (OS-TARGET: key-hex)"
    assert str(luks_disk) in duk_power_on.files, duk_power_on.files.keys()
    assert any("/tpm/" in path for path in duk_power_on.files), duk_power_on.files.keys()
    leaks = {path: found for path, found in duk_power_on.files.items() if found}
    assert leaks == {}


def test_the_ram_handed_to_the_os_holds_no_passphrase(duk_power_on: DukPowerOn) -> None:
    assert duk_power_on.ram.canary_found, "the scan does not see the firmware kernel's RAM"
    assert duk_power_on.ram.leaks == {}


def test_wrong_duk_passphrases_leave_the_recovery_passphrase(
    machine: Path, initrd_duk: Path, luks_disk: Path, duk_set_up: SetUp
) -> None:
    with start(machine, initrd_duk, luks_disk) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        running.press("d")
        for attempt in (1, 2, 3):
            running.wait_for_screen(f"Attempt {attempt} of 3", 300)
            type_line(running, f"not the passphrase {attempt}")
        choice = words(running.wait_for_screen("Boot without the Disk Unlock Key?", 300))
        assert "refused 3 times" in choice, choice
        running.press("y")
        answer_the_os(running, osd.DISK_RECOVERY_PASSPHRASE)
        slots = opened(running)
    assert sorted(slots.values()) == ["0", "0"], slots


def _replace_luks2_header(disk: Path, work: Path) -> None:
    """Another LUKS2 container's header over /dev/vda3's (the same size)."""
    other = work / "other.img"
    with open(other, "wb") as f:
        f.truncate(osd.LUKS_ROOT.size)
    subprocess.run(
        [
            "/sbin/cryptsetup",
            "luksFormat",
            "--batch-mode",
            "--type=luks2",
            "--pbkdf=pbkdf2",
            "--pbkdf-force-iterations=1000",
            "--key-file=-",
            str(other),
        ],
        input=b"an attacker's passphrase",
        check=True,
        capture_output=True,
        timeout=120,
    )
    header = other.read_bytes()[: 16 << 20]
    with open(disk, "r+b") as f:
        f.seek(osd.LUKS_ROOT.offset)
        f.write(header)


def test_a_replaced_header_refuses_the_boot_naming_the_device(
    machine: Path, initrd_duk: Path, luks_disk: Path, duk_set_up: SetUp
) -> None:
    changed = machine / "luks-disk-changed.img"
    shutil.copyfile(luks_disk, changed)
    _replace_luks2_header(changed, machine)
    with start(machine, initrd_duk, changed) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        running.press("d")
        refusal = words(running.wait_for_screen("Boot without the Disk Unlock Key?", 300))
        assert "/dev/vda3" in refusal and "LUKS" in refusal, refusal
        assert "/dev/vda4" not in refusal.split("Boot without")[1], refusal
        assert "DUK passphrase" not in running.console_text()
        running.press("b")
        running.wait_for_screen(MAIN, 60)
        power_off(running)
        running.wait_exit(120)


@pytest.fixture(scope="module")
def initrd_other(tmp_path_factory: pytest.TempPathFactory, owner_key: OwnerKey) -> Path:
    """The same runtime with other owner settings: PCR 9 differs."""
    other = SETTINGS + b"# one more line in the owner's settings\n"
    return build(tmp_path_factory.mktemp("build-duk-other"), other, owner_key, signing=True)


def test_a_changed_configuration_names_the_pcr_and_leaves_the_recovery_passphrase(
    machine: Path, initrd_other: Path, luks_disk: Path, duk_set_up: SetUp
) -> None:
    with start(machine, initrd_other, luks_disk) as running:
        running.wait_for_screen("TOTP code cannot be shown", FIRST_SCREEN)
        running.press("i")  # ignore and continue: the menu, unattested
        running.wait_for_screen(MAIN, 120)
        running.press("d")
        # known before the passphrase is asked: none is
        choice = words(running.wait_for_screen("Boot without the Disk Unlock Key?", 300))
        # PCR 9 measures the image (OVMF's PCR 4 events move with it too here)
        named = re.search(r"stays sealed: PCR ([\d, ]+) changed", choice)
        assert named and "9" in named.group(1).split(", "), choice
        assert "DUK passphrase" not in running.console_text()
        running.press("y")
        answer_the_os(running, osd.DISK_RECOVERY_PASSPHRASE)
        slots = opened(running)
    assert sorted(slots.values()) == ["0", "0"], slots


# --- after a TPM reset (last: it changes the machine for good) ----------------


@dataclass
class TpmReset:
    """The reset's question and its last page, in words."""

    question: str
    done: str


@pytest.fixture(scope="module")
def tpm_reset(machine: Path, initrd_duk: Path, luks_disk: Path, duk_set_up: SetUp) -> TpmReset:
    with start(machine, initrd_duk, luks_disk) as running:
        running.wait_for_screen(MAIN, FIRST_SCREEN)
        question, done = reset_tpm_from_the_options(running, OWNER_PASSPHRASE, NEW_OWNER_PASSPHRASE)
        power_off(running)
        running.wait_exit(120)
    return TpmReset(question, done)


def test_a_tpm_reset_says_the_disk_unlock_key_goes_with_it(tpm_reset: TpmReset) -> None:
    assert "the disk key" in tpm_reset.question, tpm_reset.question
    # /boot names the DUK's disks: the page says so without an "if"
    assert "The Disk Unlock Key sealed in it is gone too" in tpm_reset.done, tpm_reset.done
    assert "recovery passphrase" in tpm_reset.done, tpm_reset.done


@dataclass
class AfterReset:
    """The power-on after the reset: its first screen, the saved default's
    refusal, the boot's words about the key (all in words), its console and
    the OS's report."""

    first: str
    default_refused: str
    without_key: str
    console: str
    slots: dict[str, str]


@pytest.fixture(scope="module")
def after_the_reset(
    machine: Path, initrd_duk: Path, luks_disk: Path, tpm_reset: TpmReset
) -> AfterReset:
    with start(machine, initrd_duk, luks_disk) as running:
        # /boot's rollback counter was in the TPM: the start says so, and its
        # advice to an owner who reset the TPM is to sign /boot again
        first = words(running.wait_for_screen("TPM state inconsistent", FIRST_SCREEN))
        running.press("m")  # continue to the main menu (no attestation)
        shown, _ = running.wait_for_any(("TOTP code cannot be shown", MAIN), 120)
        if shown != MAIN:  # no TOTP secret was sealed after the reset
            running.press("i")  # ignore and continue: the menu, unattested
            running.wait_for_screen(MAIN, 120)
        signed = sign_from_the_options(running, first=True, owner_passphrase=NEW_OWNER_PASSPHRASE)
        assert "/boot is signed and verifies" in words(signed), signed
        running.press("enter")
        running.wait_for_screen(MAIN, 120)
        running.press("d")
        shown, screen = running.wait_for_any(
            ("The boot did not start", "Boot without the Disk Unlock Key?"), SIGN
        )
        default_refused = ""
        if shown == "The boot did not start":
            # the saved default is bound to the TPM's storage key, which the
            # reset changed: the screen says to save it again, which signs
            # /boot again and boots it (no DUK is offered: no TOTP vouched)
            default_refused = words(screen)
            running.press("m")
            running.wait_for_screen(MAIN, 60)
            make_first_entry_default(running, "Debian GNU/Linux")
            screen = running.wait_for_screen("Boot without the Disk Unlock Key?", 300)
        without_key = words(screen)
        running.press("y")
        answer_the_os(running, osd.DISK_RECOVERY_PASSPHRASE)
        slots = opened(running)
        console = running.console_text()
    return AfterReset(first, default_refused, without_key, console, slots)


def test_after_a_tpm_reset_the_boot_says_the_key_is_gone_and_asks_no_duk_passphrase(
    after_the_reset: AfterReset,
) -> None:
    first = after_the_reset.first
    assert "no longer holds the rollback counter" in first and "sign /boot again" in first, first
    refused = after_the_reset.default_refused
    assert not refused or ("storage key" in refused and "save it again" in refused), refused
    words_about_the_key = after_the_reset.without_key
    assert "The TPM no longer holds the Disk Unlock Key" in words_about_the_key, words_about_the_key
    # no TOTP vouched for the firmware in this power-on: the key is not set up
    # again from here, and the screen says what comes first
    assert "No TOTP code vouched" in words_about_the_key, words_about_the_key
    assert "DUK passphrase" not in after_the_reset.console


def test_after_a_tpm_reset_the_recovery_passphrase_opens_slot_0(
    after_the_reset: AfterReset,
) -> None:
    assert "OS-TARGET: secret.key" not in after_the_reset.console
    assert sorted(after_the_reset.slots.values()) == ["0", "0"], after_the_reset.slots
