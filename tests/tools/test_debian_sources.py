"""Pinned Debian source packages (tools/initrd/debian_sources.py and their
[[deb_source]] lock entries), without the network: the .dsc and Sources index
parsers, the private deb-src list, lock entries read and written, and refusal
of any file that differs from the lock. apt is replaced by a fake that writes
the files a real download would."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from tools.initrd import debian_sources, lock
from tools.initrd.debian_sources import (
    DebianSourceError,
    NotServedError,
    PrivateApt,
    cached_path,
    check_dsc,
    deb_src_list,
    fetch,
    parse_dsc,
    upstream_version,
)
from tools.initrd.lock import (
    LOCK_FILE,
    PACKAGES_FILE,
    REFRESH_COMMAND,
    DebSourceFile,
    DebSourcePin,
    Lock,
    LockError,
    load_lock,
    render_lock,
    wanted_debian_sources,
)

NAME, VERSION = "tiny", "1:2.0-3+deb12u1"
TARBALLS = {"tiny_2.0.orig.tar.xz": b"upstream bytes\n", "tiny_2.0-3+deb12u1.debian.tar.xz": b"d"}


def _entry(filename: str, data: bytes) -> DebSourceFile:
    return DebSourceFile(filename, hashlib.sha256(data).hexdigest(), len(data))


def dsc_text(files: dict[str, bytes], version: str = VERSION, signed: bool = True) -> str:
    body = (
        f"Format: 3.0 (quilt)\nSource: {NAME}\nBinary: {NAME}\nVersion: {version}\n"
        "Checksums-Sha1:\n"
        + "".join(
            f" {hashlib.sha1(d, usedforsecurity=False).hexdigest()} {len(d)} {n}\n"
            for n, d in files.items()
        )
        + "Checksums-Sha256:\n"
        + "".join(f" {_entry(n, d).sha256} {len(d)} {n}\n" for n, d in files.items())
        + "Files:\n"
        + "".join(
            f" {hashlib.md5(d, usedforsecurity=False).hexdigest()} {len(d)} {n}\n"
            for n, d in files.items()
        )
    )
    if not signed:
        return body
    return (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        + body
        + "\n-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAd\n=abcd\n-----END PGP SIGNATURE-----\n"
    )


def package_files(dsc: str | None = None) -> dict[str, bytes]:
    """The files of the test package as a download would give them, .dsc first."""
    return {"tiny_2.0-3+deb12u1.dsc": (dsc or dsc_text(TARBALLS)).encode(), **TARBALLS}


def pin_of(files: dict[str, bytes]) -> DebSourcePin:
    return DebSourcePin(NAME, VERSION, tuple(_entry(n, d) for n, d in files.items()))


class FakeApt:
    """Stands in for apt: update does nothing, `apt-get source` writes ``files``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> None:
        self.files = files
        self.downloads = 0
        monkeypatch.setattr(PrivateApt, "update", quiet_update)
        monkeypatch.setattr(debian_sources, "_apt_source", self._source)

    def _source(self, apt: PrivateApt, name: str, version: str, into: Path, **_: object) -> None:
        self.downloads += 1
        for filename, data in self.files.items():
            (into / filename).write_bytes(data)


def quiet_update(apt: PrivateApt) -> None:
    apt.root.mkdir(parents=True, exist_ok=True)  # what a real update leaves


def no_subprocess(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
    raise AssertionError(f"ran a program: {args}")


def cached_files(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "debian-sources").rglob("*") if p.is_file())


# --- the .dsc ----------------------------------------------------------------


def test_parse_dsc_reads_source_version_and_sha256_of_each_file() -> None:
    dsc = parse_dsc(dsc_text(TARBALLS))
    assert (dsc.source, dsc.version) == (NAME, VERSION)
    assert dsc.files == tuple(_entry(n, d) for n, d in TARBALLS.items())


def test_parse_dsc_unsigned_and_dash_escaped() -> None:
    assert parse_dsc(dsc_text(TARBALLS, signed=False)).version == VERSION
    text = dsc_text(TARBALLS).replace("Format:", "- Format:", 1)  # OpenPGP dash-escaping
    assert parse_dsc(text).source == NAME


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda t: t.replace("Checksums-Sha256:", "Checksums-Sha512:"), "no Checksums-Sha256"),
        (lambda t: t.replace(f"Version: {VERSION}\n", ""), "no Version"),
        (lambda t: re.sub(r"(Sha256:\n [0-9a-f]{64}) \d+", r"\1 many", t), "bad Checksums"),
        (lambda t: re.sub(r"(Sha256:\n) [0-9a-f]{64}", r"\1 " + "z" * 64, t), "bad Checksums"),
        (lambda t: t.replace(" tiny_2.0.orig", " ../tiny_2.0.orig"), "not a plain file name"),
        (lambda t: t.replace("-----BEGIN PGP SIGNATURE-----", ""), "armor"),
        (lambda t: t.replace("Source:", "Source"), "not a deb822 field"),
    ],
    ids=["no-sha256", "no-version", "bad-size", "bad-hash", "path", "armor", "syntax"],
)
def test_parse_dsc_refuses_a_bad_dsc(change, words: str) -> None:
    with pytest.raises(DebianSourceError, match=words):
        parse_dsc(change(dsc_text(TARBALLS)))


def test_check_dsc_accepts_a_pin_that_agrees() -> None:
    files = package_files()
    check_dsc(pin_of(files), files["tiny_2.0-3+deb12u1.dsc"].decode())


def test_check_dsc_refuses_a_lock_that_disagrees_with_the_dsc() -> None:
    files = package_files()
    pin = pin_of({**files, "tiny_2.0.orig.tar.xz": b"other upstream bytes"})
    with pytest.raises(DebianSourceError, match=r"tiny_2\.0\.orig\.tar\.xz") as err:
        check_dsc(pin, files["tiny_2.0-3+deb12u1.dsc"].decode())
    assert "Checksums-Sha256" in str(err.value) and REFRESH_COMMAND in str(err.value)
    older = package_files(dsc_text(TARBALLS, version="1:2.0-3"))
    with pytest.raises(DebianSourceError, match=r"1:2\.0-3, the lock says"):
        check_dsc(pin_of(files), older["tiny_2.0-3+deb12u1.dsc"].decode())


def test_upstream_version_drops_epoch_and_revision() -> None:
    assert upstream_version("1:2.0.25-3+deb12u3") == "2.0.25"
    assert upstream_version("3.0.22-1~deb12u2") == "3.0.22"
    assert upstream_version("2:2.6.1-4~deb12u2") == "2.6.1"
    assert upstream_version("1.2") == "1.2"  # a native package has no revision


# --- the private apt ---------------------------------------------------------

HOST_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEZ
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
Enabled: no
URIs: http://example.org/debian
Suites: trixie
Components: main
"""


def test_deb_src_list_repeats_the_hosts_mirrors_and_suites_as_deb_src() -> None:
    text = deb_src_list(HOST_SOURCES)
    stanzas = text.strip().split("\n\n")
    assert len(stanzas) == 2  # the disabled entry is left out
    assert stanzas[0] == (
        "Types: deb-src\nURIs: http://deb.debian.org/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    )
    assert "Suites: bookworm-security\nComponents: main contrib\n" in stanzas[1]
    # An inline key keeps its continuation lines as written.
    assert stanzas[1].endswith(
        "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mDMEZ\n"
        " -----END PGP PUBLIC KEY BLOCK-----"
    )
    assert "example.org" not in text and "snapshot" not in text


def test_deb_src_list_needs_a_deb_entry() -> None:
    with pytest.raises(DebianSourceError, match="no enabled 'Types: deb' entry"):
        deb_src_list("Types: deb-src\nURIs: http://deb.debian.org/debian\n")


def test_private_apt_keeps_every_apt_path_under_the_cache(tmp_path: Path) -> None:
    options = PrivateApt(tmp_path).options()
    settings = dict(option.split("=", 1) for option in options[1::2])
    assert options[0::2] == ["-o"] * len(settings)
    for key in ("SourceList", "SourceParts", "Preferences", "PreferencesParts"):
        assert f"Dir::Etc::{key}" in settings
    for key in ("Dir::State", "Dir::State::status", "Dir::State::Lists", "Dir::Cache"):
        assert key in settings
    for value in settings.values():
        assert Path(value).is_relative_to(tmp_path / "debian-sources" / "apt")


def test_missing_host_sources_is_a_plain_error(tmp_path: Path) -> None:
    apt = PrivateApt(tmp_path, host_sources=tmp_path / "debian.sources")
    with pytest.raises(DebianSourceError, match=r"cannot read .*debian\.sources"):
        apt.update()


def test_offered_reads_every_version_from_the_sources_index(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def stanza(package: str, version: str, files: dict[str, bytes]) -> str:
        sums = "".join(f" {_entry(n, d).sha256} {len(d)} {n}\n" for n, d in files.items())
        return (
            f"Package: {package}\nFormat: 3.0 (quilt)\nVersion: {version}\n"
            f"Checksums-Sha256:\n{sums}Directory: pool/main/t/{package}\n"
        )

    # The index lists the .dsc after the tarballs here; the pin puts it first.
    listed = {**TARBALLS, "tiny_2.0-3+deb12u1.dsc": b"dsc"}
    shown = "\n".join(
        [
            stanza(NAME, VERSION, listed),
            stanza(NAME, "1:2.0-3", {"tiny_2.0-3.dsc": b"old", **TARBALLS}),
            stanza(NAME, VERSION, listed),  # the same version in a second suite
            stanza("other", "1.0-1", {"other_1.0-1.dsc": b"x"}),
        ]
    )
    monkeypatch.setattr(PrivateApt, "run", lambda self, tool, args, timeout, cwd=None: shown)
    found = debian_sources.offered([NAME], tmp_path)
    assert list(found) == [NAME]
    assert list(found[NAME]) == [VERSION, "1:2.0-3"]
    pin = found[NAME][VERSION]
    assert pin.dsc == pin.files[0] == _entry("tiny_2.0-3+deb12u1.dsc", b"dsc")
    assert set(pin.files[1:]) == {_entry(n, d) for n, d in TARBALLS.items()}
    with pytest.raises(DebianSourceError, match="no source package nosuch"):
        debian_sources.offered([NAME, "nosuch"], tmp_path)


def test_failed_files_are_named_unquoted() -> None:
    message = (
        "E: Failed to fetch http://deb.debian.org/debian/pool/main/o/openssl/"
        "openssl_3.0.22-1%7edeb12u2.dsc  404  Not Found [IP: 192.0.2.1 80]\n"
        "E: Failed to fetch some archives."
    )
    assert debian_sources._failed_files(message) == ["openssl_3.0.22-1~deb12u2.dsc"]


# --- fetch: the cache and refusal of mismatches --------------------------------


def test_fetch_downloads_checks_and_caches_by_sha256(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = package_files()
    pin = pin_of(files)
    apt = FakeApt(monkeypatch, files)
    paths = fetch(pin, tmp_path)
    assert paths == [cached_path(tmp_path, f) for f in pin.files]
    assert paths[0].name.endswith(".dsc")
    for path, file in zip(paths, pin.files, strict=True):
        assert path.parent.name == file.sha256 and path.read_bytes() == files[file.filename]
    assert list((tmp_path / "debian-sources").glob("download-*")) == []  # no leftovers
    # Cached: no apt, no program at all.
    monkeypatch.setattr(debian_sources, "_run", no_subprocess)
    assert fetch(pin, tmp_path) == paths
    assert apt.downloads == 1


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (lambda f: {**f, "tiny_2.0.orig.tar.xz": b"upstream bytEs\n"}, "sha256 [0-9a-f]{64} does"),
        (lambda f: {**f, "tiny_2.0.orig.tar.xz": b"short"}, "size 5 does not match"),
        (lambda f: {**f, "tiny_2.0-3+deb12u1.extra.tar.xz": b"x"}, "gave .*extra"),
        (lambda f: {k: v for k, v in f.items() if "orig" not in k}, "the lock lists"),
    ],
    ids=["sha256", "size", "extra-file", "missing-file"],
)
def test_a_download_that_differs_from_the_lock_is_refused_and_not_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tamper, words: str
) -> None:
    files = package_files()
    FakeApt(monkeypatch, tamper(files))
    with pytest.raises(DebianSourceError, match=words) as err:
        fetch(pin_of(files), tmp_path)
    assert REFRESH_COMMAND in str(err.value)
    assert cached_files(tmp_path) == []


def test_a_lock_that_disagrees_with_its_dsc_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The .dsc lists a different orig tarball than the lock and the download:
    # each file matches the lock, the .dsc does not.
    other = dsc_text({**TARBALLS, "tiny_2.0.orig.tar.xz": b"what Debian published"})
    files = package_files(other)
    FakeApt(monkeypatch, files)
    with pytest.raises(DebianSourceError, match="disagrees with the Checksums-Sha256"):
        fetch(pin_of(files), tmp_path)
    assert cached_files(tmp_path) == []


def test_a_corrupted_cached_file_is_removed_and_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = package_files()
    pin = pin_of(files)
    FakeApt(monkeypatch, files)
    paths = fetch(pin, tmp_path)
    paths[1].write_bytes(b"upstream bytEs\n")  # same size, other bytes
    with pytest.raises(DebianSourceError, match="removed from the cache"):
        fetch(pin, tmp_path)
    assert not paths[1].exists()
    assert fetch(pin, tmp_path) == paths  # the next fetch downloads it again


def test_dropped_and_unserved_files_name_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(PrivateApt, "update", quiet_update)
    answers = {
        "E: Can not find version '0.0-0' of package 'tiny'\n"
        "E: Unable to find a source package for tiny": "no longer offers",
        "E: Failed to fetch http://deb.debian.org/debian/pool/main/t/tiny/"
        "tiny_2.0.orig.tar.xz  404  Not Found": "answers 404 Not Found for tiny_2.0.orig",
    }
    for stderr, words in answers.items():
        done = subprocess.CompletedProcess[str]([], 100, "", stderr)
        monkeypatch.setattr(debian_sources, "_run", lambda *a, done=done, **k: done)
        with pytest.raises(DebianSourceError, match=words) as err:
            fetch(pin_of(package_files()), tmp_path)
        if "404" in stderr:
            assert isinstance(err.value, NotServedError)
        else:
            assert REFRESH_COMMAND in str(err.value)
    assert cached_files(tmp_path) == []


# --- lock entries ------------------------------------------------------------


def test_deb_sources_render_and_load_round_trip(tmp_path: Path) -> None:
    pins = [pin_of(package_files())]
    path = tmp_path / "lock.toml"
    path.write_text(render_lock([], [], pins))
    assert "[[deb_source]]" in path.read_text()
    assert load_lock(path) == Lock(debs={}, sources={}, deb_sources={NAME: pins[0]})
    assert load_lock(path).deb_source(NAME).dsc.filename == "tiny_2.0-3+deb12u1.dsc"


def test_committed_lock_pins_every_wanted_source_package() -> None:
    committed = load_lock()
    names = wanted_debian_sources()
    assert names and set(names) == set(committed.deb_sources)
    for name, pin in committed.deb_sources.items():
        assert pin.name == name and pin.version
        assert pin.dsc.filename.startswith(f"{name}_") and len(pin.files) >= 2
    # The busybox binary is a binNMU (+b1) of this source version.
    assert committed.deb_source("busybox").version == "1:1.35.0-4+deb12u1"
    assert committed.deb_source("gnupg2").version == "2.2.40-1.1+deb12u2"  # built from source


def test_the_committed_lock_is_what_render_lock_writes_with_deb_sources() -> None:
    committed = load_lock()
    rendered = render_lock(
        list(committed.debs.values()),
        list(committed.sources.values()),
        list(committed.deb_sources.values()),
    )
    assert rendered == LOCK_FILE.read_text()


GOOD_FILE = f'{{ filename = "a_1.dsc", sha256 = "{"ab" * 32}", size = 1 }}'


@pytest.mark.parametrize(
    "entry",
    [
        'name = "a"\nversion = "1"\n',
        f'name = "a"\nversion = "1"\nfiles = [{GOOD_FILE}]\nextra = 1\n',
        'name = "a"\nversion = "1"\nfiles = "a_1.dsc"\n',
        f'name = "a"\nversion = "1"\nfiles = [{GOOD_FILE.replace("a_1.dsc", "a.tar.xz")}]\n',
        f'name = "a"\nversion = "1"\nfiles = [{GOOD_FILE}, {GOOD_FILE}]\n',
        f'name = "a"\nversion = "1"\nfiles = [{GOOD_FILE.replace("ab", "AB")}]\n',
        f'name = "a"\nversion = "1"\nfiles = [{GOOD_FILE.replace("a_1.dsc", "../a_1.dsc")}]\n',
        f'name = "a"\nversion = "1"\nfiles = [{GOOD_FILE.replace("size = 1", "size = -1")}]\n',
        f'name = "a"\nversion = 1\nfiles = [{GOOD_FILE}]\n',
    ],
    ids=[
        "no-files",
        "extra-key",
        "files-not-list",
        "no-dsc",
        "two-dsc",
        "bad-sha256",
        "path",
        "negative-size",
        "version-not-string",
    ],
)
def test_malformed_deb_source_entry_names_the_refresh_command(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "lock.toml"
    path.write_text("[[deb_source]]\n" + entry)
    with pytest.raises(LockError, match="malformed") as err:
        load_lock(path)
    assert REFRESH_COMMAND in str(err.value)


def test_unknown_deb_source_names_packages_toml() -> None:
    with pytest.raises(LockError) as err:
        load_lock().deb_source("no-such-source")
    assert PACKAGES_FILE.name in str(err.value) and REFRESH_COMMAND in str(err.value)


# --- refresh: which version is pinned ----------------------------------------


def test_refresh_prefers_the_locked_binaries_source_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def pin(name: str, version: str) -> DebSourcePin:
        return DebSourcePin(name, version, (_entry(f"{name}_{version}.dsc", version.encode()),))

    offered = {
        "busybox": {v: pin("busybox", v) for v in ("1:1.35.0-4+deb12u2", "1:1.35.0-4+deb12u1")},
        "openssl": {v: pin("openssl", v) for v in ("3.0.17-1~deb12u2", "3.0.22-1~deb12u2")},
        "mbedtls": {v: pin("mbedtls", v) for v in ("2.28.3-1~bpo1", "2.28.3-1")},
    }
    shown = (
        "Package: busybox\nSource: busybox (1:1.35.0-4+deb12u1)\n"
        "Version: 1:1.35.0-4+deb12u1+b1\n\n"
        "Package: libssl3\nSource: openssl\nVersion: 3.0.22-1~deb12u2\n\n"
        "Package: libssl3\nSource: openssl\nVersion: 3.0.17-1~deb12u2\n\n"
    )
    debs = [
        lock.DebPin("busybox", "1:1.35.0-4+deb12u1+b1", "amd64", "0" * 64, 1),
        lock.DebPin("libssl3", "3.0.22-1~deb12u2", "amd64", "0" * 64, 1),
    ]
    monkeypatch.setattr(debian_sources, "offered", lambda names, cache: offered)
    monkeypatch.setattr(debian_sources, "confirm_dsc", lambda pin, cache: True)
    monkeypatch.setattr(lock, "_run", lambda argv, timeout, cwd=None: shown)
    pins = lock._deb_source_pins(["busybox", "mbedtls", "openssl"], debs, tmp_path)
    # busybox: the binNMU's source, though the archive has a newer one;
    # openssl: the locked libssl3's; mbedtls: no binary, the newest (dpkg's order).
    assert [p.version for p in pins] == ["1:1.35.0-4+deb12u1", "2.28.3-1", "3.0.22-1~deb12u2"]


@pytest.mark.parametrize(
    ("name", "version"),
    [("../etc", "1.0-1"), ("-oAPT::x=1", "1.0-1"), ("busybox", "-1"), ("busybox", "1.0/../x")],
)
def test_a_lock_entry_whose_name_or_version_could_escape_is_refused(
    name: str, version: str
) -> None:
    dsc = DebSourceFile("x_1.0-1.dsc", "a" * 64, 10)
    with pytest.raises(ValueError, match="is not a Debian"):
        DebSourcePin(name, version, (dsc,))


def test_a_hung_or_missing_apt_is_said_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*args: object, **kwargs: object) -> object:
        raise subprocess.TimeoutExpired("apt-get", 1)

    monkeypatch.setattr(subprocess, "run", hang)
    with pytest.raises(DebianSourceError, match="did not finish"):
        debian_sources._run(["apt-get", "update"], 1)

    def missing(*args: object, **kwargs: object) -> object:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(subprocess, "run", missing)
    with pytest.raises(DebianSourceError, match="could not be run"):
        debian_sources._run(["dpkg-source", "-x"], 1)
