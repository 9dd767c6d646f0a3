"""Check, sign or annotate a /boot from a running OS or another computer,
exactly as the firmware checks it at power-on:

  python3 -m runtime.integrity verify /boot --owner-key owner.asc [--counter N]
  python3 -m runtime.integrity sign /boot --gnupg-home ~/.gnupg --owner-key owner.asc --counter N
  python3 -m runtime.integrity trigger /boot --phase pre|post [--package NAME]

verify prints VERIFIED or REFUSED with every reason, and exits 0 or 1. Without
--counter the rollback counter is not checked (only the firmware can read the
TPM; its integrity screen shows the value). sign re-hashes and signs at the
counter's present value (a host cannot move the TPM counter; the firmware's
own signing does). trigger records what an OS update changed since the last
signing, for the firmware to show. Exit status 2: a usage error.
"""

from __future__ import annotations

import argparse
import sys

from runtime.integrity.boot_lists import ROLLBACK_FILE, ListFormatError, parse_rollback
from runtime.integrity.gpg_signer import GpgSigner
from runtime.integrity.package_trigger import PHASES, format_trigger, write_trigger
from runtime.integrity.sign_boot import SigningError, sign_boot
from runtime.integrity.verify_boot import BootReport, CounterGone, Problem, verify_boot


class HostCounter:
    """The counter value the owner read from the firmware; never moved here."""

    def __init__(self, boot_dir: str, value: int) -> None:
        self.value = value
        try:
            with open(f"{boot_dir}/{ROLLBACK_FILE}", "rb") as f:
                self.index: int | None = parse_rollback(f.read(4096)).nv_index
        except (OSError, ListFormatError):
            self.index = None

    def exists(self, index: int) -> bool:
        return index == self.index

    def read(self, index: int) -> int | None:
        if index != self.index:
            raise CounterGone(index)
        return self.value

    def create(self) -> int:
        # the owner vouches for the counter /boot names by giving its value
        if self.index is not None:
            return self.index
        raise SigningError(
            f"/boot/{ROLLBACK_FILE} names no counter: sign once in the "
            "firmware first, which creates the TPM counter."
        )

    def increment(self, index: int) -> int:
        raise SigningError("a host cannot move the TPM counter")

    def is_rollback(self, index: int) -> bool:
        return index == self.index

    def retire_others(self, index: int) -> None:
        """A host cannot reach the TPM: the firmware's next signing retires them."""


def _print_report(report: BootReport, counter_checked: bool) -> int:
    if report.ok:
        print(
            f"VERIFIED: /boot is exactly what key {report.signer} signed"
            + (f", at rollback counter {report.counter}." if counter_checked else ".")
        )
        if not counter_checked:
            print("The rollback counter was not checked: give --counter N (the firmware shows N).")
        return 0
    print("REFUSED: /boot is not what the owner signed.")
    for finding in report.findings:
        print(f"  - {finding}")
    for name, text in report.package_triggers.items():
        print(f"  (an OS update left {name}: {text.splitlines()[0] if text else ''})")
    if any(
        f.problem in (Problem.FILES_MODIFIED, Problem.FILES_ADDED, Problem.FILES_REMOVED)
        for f in report.findings
    ):
        print("If you made these changes (an OS update), sign /boot again.")
    return 1


def _verify(args: argparse.Namespace) -> int:
    reader = None
    if args.counter is not None:
        expected = args.counter

        def reader(_index: int) -> int:
            return int(expected)

    report = verify_boot(
        args.boot, args.owner_key, reader, pinned_fingerprints=args.fingerprint or None
    )
    return _print_report(report, args.counter is not None)


def _sign(args: argparse.Namespace) -> int:
    signer = GpgSigner(args.gnupg_home, args.key)
    try:
        report = sign_boot(
            args.boot, signer, HostCounter(args.boot, args.counter), args.owner_key, bump=False
        )
    except (SigningError, OSError) as err:
        print(f"NOT SIGNED: {err}", file=sys.stderr)
        return 1
    return _print_report(report, True)


def _trigger(args: argparse.Namespace) -> int:
    # the signature does not matter here, only the lists: any key file will do
    report = verify_boot(args.boot, args.owner_key or "", None)
    changed = sorted({*report.modified, *report.added, *report.removed})
    path = write_trigger(
        args.boot, args.phase, format_trigger(changed, args.package, args.note or [])
    )
    print(f"wrote {path}: {len(changed)} changed file(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m runtime.integrity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check /boot as the firmware does")
    verify.add_argument("boot")
    verify.add_argument("--owner-key", required=True, help="the owner's armored public key")
    verify.add_argument(
        "--fingerprint",
        action="append",
        help="pin these fingerprints (default: every key in --owner-key)",
    )
    verify.add_argument("--counter", type=int, help="the TPM rollback counter's value now")
    sign = sub.add_parser("sign", help="re-hash and sign /boot at the present counter value")
    sign.add_argument("boot")
    sign.add_argument("--gnupg-home", required=True, help="the GnuPG home with the owner's key")
    sign.add_argument("--key", help="the signing key's id (default: gpg's default key)")
    sign.add_argument("--owner-key", required=True, help="the owner's armored public key")
    sign.add_argument(
        "--counter",
        type=int,
        required=True,
        help="the TPM rollback counter's value now (the firmware shows it)",
    )
    trigger = sub.add_parser("trigger", help="record what an OS update changed in /boot")
    trigger.add_argument("boot")
    trigger.add_argument("--phase", choices=PHASES, required=True)
    trigger.add_argument("--package", default="", help="the package whose update this is")
    trigger.add_argument("--owner-key", help="(not needed: the lists name the changes)")
    trigger.add_argument("--note", action="append", help="a free line to add (dpkg's log)")
    args = parser.parse_args(argv)
    handlers = {"verify": _verify, "sign": _sign, "trigger": _trigger}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
