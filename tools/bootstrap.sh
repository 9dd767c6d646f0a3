#!/usr/bin/env bash
# Install what the project needs on a Debian 12 machine: the Debian packages
# that are missing, a virtualenv in .venv, and the project with its test extras.
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
APT_PACKAGES=(
    swtpm swtpm-tools        # the software TPM for tests and the QEMU board
    libtss2-dev pkg-config   # tpm2-pytss builds against Debian's libtss2
    gcc python3-dev python3-venv
    tpm2-tools whiptail oathtool  # only for the benchmarks: the shell runtime beside ours
    gnupg busybox-static    # busybox: Heads' own sha256sum, to check our lists with; static:
                            # tools/bench_shell_baseline.py copies it alone
    # the Disk Unlock Key's tests: cryptsetup on image files, and systemd's crypttab
    # generator reading the crypttab lines handed to the OS
    cryptsetup-bin systemd
    # build_initrd.py: tpm2-pytss is built with Debian's own python3.11
    python3-pip python3-pkgconfig python3-setuptools-scm python3-cffi python3-setuptools
    python3-wheel zstd xz-utils cpio
    # from-source builds of pinned Debian sources (tools/initrd/source_build.py)
    make binutils libc6-dev dpkg-dev autoconf automake autopoint
    # gnupg from source (tools/initrd/gnupg_build.py): the libraries it compiles against
    libgpg-error-dev libgcrypt20-dev libassuan-dev libksba-dev libnpth0-dev
    libusb-1.0-0-dev zlib1g-dev
    # CPython from source (tools/initrd/cpython_build.py): _hashlib, _ctypes, zlib, _lzma
    libssl-dev libffi-dev liblzma-dev
    # the build tier traces the frozen interpreter's file accesses
    strace
    # the QEMU board and its test disk
    qemu-system-x86 fdisk e2fsprogs
)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: Python 3.11 or newer is needed as python3" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV"
    python3 -m venv "$VENV"
fi
want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: installing Python packages into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[test]"
    echo "$want" > "$VENV/.installed"
fi
