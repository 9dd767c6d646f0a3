"""From-source builds (tools/initrd/source_build.py) and gnupg's recipe
(tools/initrd/gnupg_build.py) without compiling anything: the cache key moves
with every input, the build environment is clean and reproducible, a failed
or killed build leaves no cache entry and says what to do, a finished one is
reused, and the built programs' libraries are checked."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tools.initrd import elf, gnupg_build, recipe_support, source_build
from tools.initrd.lock import DebPin, DebSourceFile, DebSourcePin, Lock
from tools.initrd.source_build import Recipe, SourceBuildError

COMPILER = "gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
VERSIONS = {"libfoo-dev": "1.0-1", "make": "4.3-4.1"}


def _pin(orig_sha: str = "a" * 64) -> DebSourcePin:
    return DebSourcePin(
        "tiny",
        "2.0-3+deb12u1",
        (
            DebSourceFile("tiny_2.0-3+deb12u1.dsc", "d" * 64, 10),
            DebSourceFile("tiny_2.0.orig.tar.xz", orig_sha, 20),
        ),
    )


def _recipe(**changes: object) -> Recipe:
    base = Recipe(
        pin=_pin(),
        configure_flags=("--disable-foo",),
        host_packages=("libfoo-dev",),
        programs=("usr/bin/tiny",),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- the cache key -----------------------------------------------------------


def test_same_inputs_give_the_same_key() -> None:
    reordered = dict(reversed(list(VERSIONS.items())))
    assert source_build.cache_key(_recipe(), COMPILER, VERSIONS) == source_build.cache_key(
        _recipe(), COMPILER, reordered
    )


@pytest.mark.parametrize(
    "changed",
    [
        {"pin": _pin(orig_sha="b" * 64)},
        {"configure_flags": ("--disable-foo", "--disable-bar")},
        {"configure_flags": ("--enable-foo",)},
        {"cflags": ("-O2", "-g0")},
        {"cppflags": ()},
        {"ldflags": ("-Wl,-z,now",)},
        {"autoreconf": True},
        {"programs": ("usr/bin/tiny", "usr/bin/other")},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_recipe_input_changes_the_key(changed: dict[str, object]) -> None:
    before = source_build.cache_key(_recipe(), COMPILER, VERSIONS)
    assert source_build.cache_key(_recipe(**changed), COMPILER, VERSIONS) != before


def test_the_compiler_and_host_package_versions_change_the_key() -> None:
    before = source_build.cache_key(_recipe(), COMPILER, VERSIONS)
    other_gcc = "gcc (Debian 12.2.0-14+deb12u2) 12.2.0"
    assert source_build.cache_key(_recipe(), other_gcc, VERSIONS) != before
    updated = {**VERSIONS, "libfoo-dev": "1.0-1+deb12u1"}
    assert source_build.cache_key(_recipe(), COMPILER, updated) != before
    assert source_build.cache_key(_recipe(), COMPILER, {**VERSIONS, "zlib1g-dev": "1"}) != before


def test_the_entry_is_named_by_package_upstream_version_and_key() -> None:
    key = source_build.cache_key(_recipe(), COMPILER, VERSIONS)
    assert source_build.entry_name(_pin(), key) == f"tiny-2.0-{key[:16]}"


def test_host_packages_include_the_base_tools_and_autotools_only_when_asked() -> None:
    plain = _recipe().all_host_packages()
    assert {"libfoo-dev", "binutils", "make", "libc6-dev"} <= set(plain)
    assert "autoconf" not in plain
    assert {"autoconf", "automake", "autopoint"} <= set(
        _recipe(autoreconf=True).all_host_packages()
    )
    assert list(plain) == sorted(plain)


# --- flags and environment -------------------------------------------------


def test_configure_gets_the_image_layout_then_the_recipe_flags() -> None:
    argv = source_build.configure_argv(_recipe(configure_flags=("--libexecdir=/usr/lib/x",)))
    assert argv[0] == "./configure"
    assert "--prefix=/usr" in argv and "--sysconfdir=/etc" in argv
    assert argv[-1] == "--libexecdir=/usr/lib/x"  # last, so the recipe wins


def test_build_environment_is_clean_and_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"CFLAGS": "-O0 -g3", "CC": "clang", "MAKEFLAGS": "-j99", "TZ": "X"}.items():
        monkeypatch.setenv(name, value)
    src = tmp_path / "work" / "src" / "tiny-2.0"
    env = source_build.build_env(_recipe(), src, tmp_path / "home", 1234)
    assert env["LC_ALL"] == "C" and env["TZ"] == "UTC"
    assert env["SOURCE_DATE_EPOCH"] == "1234"
    assert env["CC"] == "gcc"
    assert "MAKEFLAGS" not in env and "PKG_CONFIG_PATH" not in env
    cflags = env["CFLAGS"].split()
    assert "-Os" in cflags and "-g0" in cflags and "-O0" not in cflags
    assert f"-ffile-prefix-map={src}=." in cflags
    assert env["LDFLAGS"] == " ".join(source_build.DEFAULT_LDFLAGS)


# --- the host --------------------------------------------------------------


def test_package_status_lines_are_parsed() -> None:
    text = "make 4.3-4.1 installed\nautoconf  config-files\nlibfoo-dev 1:1.0-1 installed\n"
    assert source_build.parse_package_status(text) == {
        "make": ("4.3-4.1", "installed"),
        "autoconf": ("", "config-files"),
        "libfoo-dev": ("1:1.0-1", "installed"),
    }


def test_a_missing_host_package_names_itself_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_query(argv: list[str]) -> subprocess.CompletedProcess[str]:
        # dpkg-query: a removed package (config files left), an unknown one unlisted
        return subprocess.CompletedProcess(
            argv, 1, "make 4.3-4.1 installed\nautoconf  config-files\n", "no packages found"
        )

    monkeypatch.setattr(source_build, "_query", fake_query)
    with pytest.raises(SourceBuildError) as caught:
        source_build.package_versions(["make", "autoconf", "libnope-dev"])
    message = str(caught.value)
    assert "autoconf libnope-dev" in message and "make" not in message.split(":")[1]
    assert "tools/bootstrap.sh" in message and "apt-get install" in message


# --- running a step ----------------------------------------------------------


def test_a_failed_step_shows_the_last_log_lines_and_what_to_do(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    script = "for i in $(seq 1 100); do echo line $i; done; echo 'no libfoo found' >&2; exit 3"
    with pytest.raises(SourceBuildError) as caught:
        source_build._run_logged(
            "configure", ["sh", "-c", script], tmp_path, {"PATH": "/usr/bin:/bin"}, log, 30, "tiny"
        )
    message = str(caught.value)
    assert "configure of tiny failed (exit status 3)" in message
    assert "no libfoo found" in message and "line 100" in message
    assert "line 50\n" not in message  # only the last lines
    assert "tools/bootstrap.sh" in message
    assert "### configure: sh -c" in log.read_text()


def test_a_step_that_hangs_is_stopped_with_its_children(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    pid_file = tmp_path / "child.pid"
    # The child (like a compiler under make) must go too, not only the shell.
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    started = time.monotonic()
    with pytest.raises(SourceBuildError, match="took longer than 1 s and was stopped"):
        source_build._run_logged(
            "make", ["sh", "-c", script], tmp_path, {"PATH": "/usr/bin:/bin"}, log, 1, "tiny"
        )
    assert time.monotonic() - started < 30
    child = int(pid_file.read_text())
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a zombie until init reaps it: gone once /proc says it is not running
        status = Path(f"/proc/{child}/stat")
        if not status.exists() or status.read_text().split(")")[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail("the hung step's child process is still running")


def test_a_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceBuildError, match="autoreconf of tiny did not start"):
        source_build._run_logged(
            "autoreconf", ["/nonexistent/autoreconf"], tmp_path, {}, tmp_path / "log", 5, "tiny"
        )


def test_stripping_settles_every_mtime(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    program = root / "usr" / "bin" / "true"
    program.write_bytes(Path("/bin/true").read_bytes())
    (root / "usr" / "share.txt").write_text("not ELF: not stripped\n")
    (root / "usr" / "link").symlink_to("bin/true")
    env = {"PATH": "/usr/bin:/bin"}
    source_build._strip_and_settle(root, env, tmp_path / "log", 1234, "tiny")
    assert "### strip: strip --strip-unneeded" in (tmp_path / "log").read_text()
    assert "share.txt" not in (tmp_path / "log").read_text()
    for path in [root, *root.rglob("*")]:
        assert path.lstat().st_mtime == 1234, path


# --- the cache ---------------------------------------------------------------


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """No dpkg-query, gcc or compiling: _compile writes a tiny staging tree.
    Returns the work directories _compile was called with."""
    calls: list[Path] = []

    def fake_compile(recipe: Recipe, cache: Path, work: Path, log: Path, what: str) -> int:
        calls.append(work)
        log.write_text("configure output\n")
        for program in recipe.programs:
            (work / "root" / program).parent.mkdir(parents=True, exist_ok=True)
            (work / "root" / program).write_bytes(b"\x7fELF built")
        (work / "src").mkdir()
        (work / "home").mkdir()
        return 1234

    monkeypatch.setattr(source_build, "package_versions", lambda names: dict.fromkeys(names, "1"))
    monkeypatch.setattr(source_build, "compiler_version", lambda: COMPILER)
    monkeypatch.setattr(source_build, "_compile", fake_compile)
    return calls


def test_a_build_is_cached_by_its_inputs(tmp_path: Path, fake_host: list[Path]) -> None:
    built = source_build.build(_recipe(), tmp_path)
    assert built.program("usr/bin/tiny").read_bytes() == b"\x7fELF built"
    assert built.root.parent.parent == tmp_path / source_build.SUBDIR
    assert built.info["key"] == built.key and built.info["source_date_epoch"] == 1234
    assert not (built.root.parent / "src").exists()  # the sources are not kept
    again = source_build.build(_recipe(), tmp_path)
    assert again == built and len(fake_host) == 1
    other = source_build.build(_recipe(cflags=("-O2",)), tmp_path)
    assert other.key != built.key and len(fake_host) == 2
    elsewhere = source_build.build(_recipe(), tmp_path, tmp_path / "other-builds")
    assert elsewhere.root.parent.parent == tmp_path / "other-builds" and len(fake_host) == 3


def test_a_failed_build_leaves_no_entry_and_keeps_its_log(
    tmp_path: Path, fake_host: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(recipe: Recipe, cache: Path, work: Path, log: Path, what: str) -> int:
        log.write_text("checking for libfoo... no\n")
        raise SourceBuildError("configure of tiny failed (exit status 1)")

    with monkeypatch.context() as patch:
        patch.setattr(source_build, "_compile", failing)
        with pytest.raises(SourceBuildError, match=r"Full log: .*\.failed\.log") as caught:
            source_build.build(_recipe(), tmp_path)
    builds = tmp_path / source_build.SUBDIR
    kept = Path(str(caught.value).rsplit("Full log: ", 1)[1])
    assert kept.read_text() == "checking for libfoo... no\n"
    assert sorted(p.name for p in builds.iterdir()) == [kept.name]
    # Once the same inputs build, the old failure's log goes.
    built = source_build.build(_recipe(), tmp_path)
    assert sorted(p.name for p in builds.iterdir()) == [built.root.parent.name]


def test_an_interrupted_build_leaves_no_entry(
    tmp_path: Path, fake_host: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(recipe: Recipe, cache: Path, work: Path, log: Path, what: str) -> int:
        (work / "root").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(source_build, "_compile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        source_build.build(_recipe(), tmp_path)
    assert list((tmp_path / source_build.SUBDIR).iterdir()) == []


def test_a_half_entry_is_built_afresh(tmp_path: Path, fake_host: list[Path]) -> None:
    # Entries are renamed into place whole: one without build-info.json was
    # made by hand or damaged, and is never taken for a build.
    versions = dict.fromkeys(_recipe().all_host_packages(), "1")
    key = source_build.cache_key(_recipe(), COMPILER, versions)
    half = tmp_path / source_build.SUBDIR / source_build.entry_name(_pin(), key)
    (half / "root").mkdir(parents=True)
    built = source_build.build(_recipe(), tmp_path)
    assert built.root == half / "root" and len(fake_host) == 1
    assert built.program("usr/bin/tiny").read_bytes() == b"\x7fELF built"


def test_two_builds_of_the_same_inputs_at_once_compile_once(
    tmp_path: Path, fake_host: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test workers each build an image at the same time: the second build
    waits for the first and takes its entry."""
    slow = source_build._compile
    started = threading.Event()

    def slow_compile(recipe: Recipe, cache: Path, work: Path, log: Path, what: str) -> int:
        started.set()
        time.sleep(0.5)
        return slow(recipe, cache, work, log, what)

    monkeypatch.setattr(source_build, "_compile", slow_compile)
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(source_build.build(_recipe(), tmp_path)))
    first.start()
    assert started.wait(10)
    second = source_build.build(_recipe(), tmp_path)
    first.join(10)
    assert results == [second] and len(fake_host) == 1


def test_a_cached_program_that_changed_is_refused(tmp_path: Path, fake_host: list[Path]) -> None:
    """A cache entry is trusted no more than a download: each program is checked
    against the hash recorded when it was built."""
    built = source_build.build(_recipe(), tmp_path)
    built.program("usr/bin/tiny").write_bytes(b"\x7fELF planted")
    with pytest.raises(SourceBuildError, match=r"usr/bin/tiny is not the file that was built"):
        source_build.build(_recipe(), tmp_path)
    (built.root.parent / "build-info.json").write_text("{not json")
    with pytest.raises(SourceBuildError, match="is damaged: delete it"):
        source_build.build(_recipe(), tmp_path)


def test_headers_and_autotools_helpers_are_in_the_key() -> None:
    packages = _recipe(autoreconf=True).all_host_packages()
    for name in ("linux-libc-dev", "pkgconf", "m4", "perl"):
        assert name in packages, name


# --- gnupg's recipe ------------------------------------------------------------


def test_gnupg_recipe_leaves_out_what_a_firmware_never_uses() -> None:
    flags = set(gnupg_build.CONFIGURE_FLAGS)
    for part in ("sqlite", "tofu", "ldap", "gnutls", "ntbtls", "dirmngr", "gpgsm", "g13"):
        assert f"--disable-{part}" in flags
    assert {"--disable-wks-tools", "--disable-doc"} <= flags
    assert {"--enable-card-support", "--enable-ccid-driver"} <= flags
    assert "--libexecdir=/usr/lib/gnupg" in flags  # where the image keeps scdaemon
    assert "usr/lib/gnupg/scdaemon" in gnupg_build.PROGRAMS
    assert {"libusb-1.0-0-dev", "libksba-dev", "libnpth0-dev", "libassuan-dev"} <= set(
        gnupg_build.LIBRARIES
    )


def test_a_forbidden_library_in_dt_needed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs = {"gpg": ["libgcrypt.so.20", "libsqlite3.so.0"], "gpgv": ["libz.so.1", "libc.so.6"]}
    monkeypatch.setattr(elf, "needed", lambda path: (needs[Path(path).name], None))
    ok = {"usr/bin/gpgv": tmp_path / "gpgv"}
    assert gnupg_build.check_needed(ok) == {"usr/bin/gpgv": ["libz.so.1", "libc.so.6"]}
    with pytest.raises(SourceBuildError, match=r"usr/bin/gpg needs libsqlite3\.so\.0"):
        gnupg_build.check_needed({**ok, "usr/bin/gpg": tmp_path / "gpg"})


def _lock_with(versions: dict[str, str]) -> Lock:
    debs = {n: DebPin(n, v, "amd64", "0" * 64, 1) for n, v in versions.items()}
    return Lock(debs=debs, sources={})


def test_the_image_libraries_must_not_be_older_than_the_headers() -> None:
    host = dict.fromkeys(gnupg_build.LIBRARIES, "1.10.1-3")
    newer = _lock_with(dict.fromkeys(gnupg_build.LIBRARIES.values(), "1.10.1-3+deb12u1"))
    recipe_support.check_libraries_in_lock(newer, gnupg_build.LIBRARIES, host, "gnupg")
    older = _lock_with({**dict.fromkeys(gnupg_build.LIBRARIES.values(), "1.10.1-3"),
                        "libgcrypt20": "1.10.1-2"})  # fmt: skip
    with pytest.raises(SourceBuildError, match=r"libgcrypt20-dev 1\.10\.1-3, newer than the image"):
        recipe_support.check_libraries_in_lock(older, gnupg_build.LIBRARIES, host, "gnupg")
