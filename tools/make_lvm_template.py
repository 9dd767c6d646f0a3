"""Make the LVM disk's physical volume template (tools/os_disk_lvm.py): a
developer's tool, run once and its output committed; the tests and
make_os_disk never run it.

    sudo .venv/bin/python -m tools.make_lvm_template [--out PATH]

Needs root, the host's lvm2 (Debian 12's 2.03.16, as the target's) and loop
devices; no device-mapper: every lvm command runs with --driverloaded n and
nothing is activated. On a loop device over a zeroed file of LVM_PART_SIZE
bytes it runs

    pvcreate LOOP
    vgcreate --physicalextentsize 4m osvg LOOP
    lvcreate -an -Zn -Wn -l 100%FREE -n cryptvault osvg

each with --driverloaded n and --devices LOOP (no other device is seen or
changed) and LVM_SYSTEM_DIR set to a private directory whose lvm.conf writes
no backups, archives, hints or devices file on the host. It checks the result
with pvs and lvs, detaches the loop device, writes the file's first pe_start
bytes xz-compressed to tools/data/osvg-pv-template.xz and prints the
constants tools/os_disk_lvm.py pins (pe_start, the logical volume's size,
the template's SHA-256): paste them there when they differ.
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import os
import sys
import tempfile
from pathlib import Path

from tools.os_disk_common import MIB, OsDiskError, host_tool, run_tool
from tools.os_disk_lvm import (
    LVM_EXTENT_SIZE,
    LVM_LV,
    LVM_LV_SIZE,
    LVM_PART_SIZE,
    LVM_PE_START,
    LVM_PV_UUID,
    LVM_TEMPLATE,
    LVM_TEMPLATE_SHA256,
    LVM_VG,
)

#: The private lvm.conf: nothing written outside the loop device.
_LVM_CONF = """\
devices {
    use_devicesfile = 0
    hints = "none"
    obtain_device_list_from_udev = 0
}
backup {
    backup = 0
    archive = 0
}
activation {
    udev_sync = 0
    udev_rules = 0
    monitoring = 0
}
global {
    use_lvmpolld = 0
    event_activation = 0
}
"""

#: The logical volume: all of the group, left inactive (there is no
#: device-mapper), so neither zeroed nor wiped (both need it active).
_LVCREATE = (
    *("--activate", "n", "--zero", "n", "--wipesignatures", "n"),
    *("--extents", "100%FREE", "--name", LVM_LV),
)
_REPORT = ("--noheadings", "--nosuffix", "--units", "b", "--separator", ";")


def _fields(output: str) -> list[str]:
    """One report line of pvs/lvs (--noheadings --separator ';')."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if len(lines) != 1:
        raise OsDiskError(f"expected one report line, got: {output!r}")
    return lines[0].split(";")


def make_template(out: Path) -> dict[str, str]:
    """Make the template at `out`; the facts to pin, by constant name."""
    if os.geteuid() != 0:
        raise OsDiskError("run as root: it needs a loop device")
    losetup = host_tool("losetup", "mount")
    lvm = host_tool("lvm", "lvm2")
    with tempfile.TemporaryDirectory(prefix="lvm-template-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "etc").mkdir()
        (tmp / "etc" / "lvm.conf").write_text(_LVM_CONF)
        env = {
            **os.environ,
            "LC_ALL": "C",
            "LVM_SYSTEM_DIR": str(tmp / "etc"),
            "LVM_SUPPRESS_FD_WARNINGS": "1",
        }
        image = tmp / "pv.img"
        with image.open("wb") as f:
            f.truncate(LVM_PART_SIZE)
        loop = run_tool([losetup, "--find", "--show", str(image)]).stdout.strip()

        def lvm_run(command: str, *args: str) -> str:
            # --devices: no other device is seen or changed
            argv = [lvm, command, "--driverloaded", "n", "--devices", loop, *args]
            return run_tool(argv, env=env).stdout

        try:
            lvm_run("pvcreate", loop)
            lvm_run("vgcreate", "--physicalextentsize", f"{LVM_EXTENT_SIZE // MIB}m", LVM_VG, loop)
            lvm_run("lvcreate", *_LVCREATE, LVM_VG)
            pv = _fields(lvm_run("pvs", *_REPORT, "-o", "pv_uuid,pe_start,dev_size,pv_size"))
            lv_fields = "vg_uuid,lv_uuid,lv_size,seg_pe_ranges"
            lv = _fields(lvm_run("lvs", *_REPORT, "-o", lv_fields, LVM_VG))
        finally:
            run_tool([losetup, "--detach", loop])
        pe_start, dev_size = int(pv[1]), int(pv[2])
        if dev_size != LVM_PART_SIZE:
            raise OsDiskError(f"the PV records {dev_size} bytes, not {LVM_PART_SIZE}")
        if not lv[3].endswith(":0-" + str(int(lv[2]) // LVM_EXTENT_SIZE - 1)):
            raise OsDiskError(f"the LV does not start at extent 0: {lv[3]}")
        with image.open("rb") as pv_file:
            template = pv_file.read(pe_start)
        if template[512:520] != b"LABELONE":
            raise OsDiskError("no LVM label in sector 1")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(
        lzma.compress(
            template, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9 | lzma.PRESET_EXTREME
        )
    )
    return {
        "LVM_PE_START": str(pe_start),
        "LVM_LV_SIZE": lv[2],
        "LVM_PV_UUID": pv[0],
        "LVM_TEMPLATE_SHA256": hashlib.sha256(template).hexdigest(),
        "# VG UUID": lv[0],
        "# LV UUID": lv[1],
        "# LV extents": lv[3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.make_lvm_template",
        description="Make the LVM test disk's physical volume template (root, lvm2).",
    )
    parser.add_argument("--out", type=Path, default=LVM_TEMPLATE)
    args = parser.parse_args(argv)
    try:
        facts = make_template(args.out)
    except OsDiskError as err:
        print(f"make_lvm_template: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); for tools/os_disk_lvm.py:")
    pinned = {
        "LVM_PE_START": str(LVM_PE_START),
        "LVM_LV_SIZE": str(LVM_LV_SIZE),
        "LVM_PV_UUID": LVM_PV_UUID,
        "LVM_TEMPLATE_SHA256": LVM_TEMPLATE_SHA256,
    }
    for name, value in facts.items():
        differs = name in pinned and pinned[name] != value
        shown = value if name.startswith("#") or value.isdigit() else f'"{value}"'
        print(f"{name} = {shown}" + ("    # differs from the pinned value" if differs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
