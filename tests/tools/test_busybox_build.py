"""busybox's recipe (tools/initrd/busybox_build.py) without compiling: its
applet list covers every command /init runs and every busybox program the
runtime runs, /init's builtins and `read -t 0.5` are configured, the image's
symlinks are that list, and the Kconfig helpers of source_build turn the
recipe's lines into a complete .config."""

from __future__ import annotations

import re
from pathlib import Path

import build_initrd
from runtime.devices import clock, power
from tests.conftest import REPO_ROOT
from tools.initrd import busybox_build, kconfig, source_build
from tools.initrd.busybox_build import APPLETS, FEATURES
from tools.initrd.lock import DebSourceFile, DebSourcePin

INIT = REPO_ROOT / "initrd_overlay" / "init"
# ash builtins and keywords /init may use without an applet
ASH_BUILTINS = {"read", "echo", "printf", "[", "test", "export", "return", "continue", "break"}
ASH_BUILTINS |= {":", "set", "local", "exit", "cd", "wait", "trap", "shift", "true", "false"}
ASH_BUILTINS |= {"unset", "for"}
KEYWORDS = {"if", "then", "elif", "else", "fi", "while", "until", "do", "done", "esac"}
KEYWORDS |= {"!", "{", "}"}
# programs that run another program: that one is a command too
LAUNCHERS = {"setsid", "exec", "busybox"}


def commands(script: str) -> set[str]:
    """The command names of a shell script, roughly: enough for /init's style."""
    found: set[str] = set()
    for line in script.splitlines():
        line = re.sub(r"(^|\s)#.*", "", line)  # a comment (not ${v#x})
        line = re.sub(r"\"(\\.|[^\"\\])*\"|'[^']*'", "STR", line)
        line = re.sub(r"\d*>&\d+|\d*[<>]+\s*[^\s;|&]+", " ", line)  # redirections (2>&1 too)
        line = re.sub(r"^\s*case\s.*?\sin\s[^)]*\)", "", line)  # case WORD in PATTERN)
        for part in re.split(r";;|;|\|\||&&|\||\$\(|`|&", line):
            part = re.sub(r"^\s*[^\s()=]*\)\s*", "", part)  # a case pattern
            words = part.split()
            while words and (words[0] in KEYWORDS or re.match(r"^\w+=", words[0])):
                words.pop(0)
            if not words or re.match(r"^\w+\(\)$", words[0]) or words[0] == ")":
                continue
            found.add(words[0])
            if words[0] in LAUNCHERS:
                rest = [w for w in words[1:] if not w.startswith("-")]
                found.update(rest[:1])
    return {c.rstrip(")") for c in found}


def test_the_parser_sees_init_s_commands() -> None:
    found = commands(INIT.read_text())
    for known in ("mount", "loadkmap", "setsid", "stty", "grep", "sync", "poweroff", "sh", "kexec"):
        assert known in found, known


def test_every_command_init_runs_is_an_applet_a_builtin_or_a_program() -> None:
    script = INIT.read_text()
    functions = set(re.findall(r"^(\w+)\(\) \{", script, re.M))
    programs = {Path(p).name for p in build_initrd.PROGRAMS}
    unknown = {
        c
        for c in commands(script)
        if c not in (*APPLETS, *ASH_BUILTINS, *functions, *programs) and not c.startswith("/")
    }
    assert unknown == set()


def test_init_s_builtins_and_fractional_read_are_configured() -> None:
    script = INIT.read_text()
    used = commands(script)
    for builtin, option in (("echo", "ASH_ECHO"), ("printf", "ASH_PRINTF"), ("[", "ASH_TEST")):
        assert builtin not in used or option in FEATURES, builtin
    if re.search(r"\bread\b[^\n]*-t\s*\d*\.\d", script):
        assert "FEATURE_SH_READ_FRAC" in FEATURES


def test_every_busybox_program_the_runtime_runs_is_an_applet() -> None:
    named = set()
    for path in (REPO_ROOT / "runtime").rglob("*.py"):
        named |= set(re.findall(r"\"/s?bin/([\w.-]+)\"", path.read_text()))
    assert {"mount", "umount", "busybox"} <= named
    # lvm is a board's choice ([disk] lvm), not in every image
    programs = {Path(p).name for p in (*build_initrd.PROGRAMS, build_initrd.LVM)}
    assert named - programs <= set(APPLETS)
    assert clock.HWCLOCK[0] == power.BUSYBOX == "/bin/busybox"
    assert clock.HWCLOCK[1] in APPLETS
    halted = set(re.findall(r"_halt\(\"(\w+)\"\)", Path(power.__file__).read_text()))
    assert halted == {"poweroff", "reboot"} and halted <= set(APPLETS)


def test_the_applet_list_has_no_repeats_and_no_modprobe() -> None:
    assert len(set(APPLETS)) == len(APPLETS)
    # modprobe needs a modules.dep the image does not have
    assert "modprobe" not in APPLETS and "insmod" in APPLETS


def test_the_recipe_gives_every_applet_and_feature_as_a_y_line() -> None:
    lines = busybox_build.kconfig().splitlines()
    assert "CONFIG_SH_IS_ASH=y" in lines and "CONFIG_MOUNT=y" in lines
    assert "CONFIG_FEATURE_MOUNT_FLAGS=y" in lines  # nodev,nosuid,noexec are flags
    assert len(lines) == len(APPLETS) + len(FEATURES)
    assert not [line for line in lines if "STATIC" in line]  # dynamic, like Debian's


# --- source_build's Kconfig helpers ---------------------------------------------

EVERY = """#
# Automatically generated make config: don't edit
#
CONFIG_HAVE_DOT_CONFIG=y
CONFIG_LONG_OPTS=y
# CONFIG_PAM is not set
CONFIG_PREFIX="./_install"
CONFIG_FEATURE_EDITING_HISTORY=255
# CONFIG_SH_IS_ASH is not set
CONFIG_SH_IS_HUSH=y
CONFIG_ASH=y
"""


def test_kconfig_over_turns_off_every_option_but_the_wanted() -> None:
    wanted = "CONFIG_SH_IS_ASH=y\nCONFIG_FEATURE_EDITING_HISTORY=64\nCONFIG_NO_SUCH=y\n"
    text = kconfig.kconfig_over(EVERY, wanted)
    assert text.splitlines() == [
        "#",
        "# Automatically generated make config: don't edit",
        "#",
        "# CONFIG_HAVE_DOT_CONFIG is not set",
        "# CONFIG_LONG_OPTS is not set",
        "# CONFIG_PAM is not set",
        'CONFIG_PREFIX="./_install"',  # strings and numbers keep their defaults
        "CONFIG_FEATURE_EDITING_HISTORY=64",
        "CONFIG_SH_IS_ASH=y",
        "# CONFIG_SH_IS_HUSH is not set",
        "# CONFIG_ASH is not set",
        "CONFIG_NO_SUCH=y",  # left for Kconfig to drop, and kconfig_dropped to name
    ]


def test_kconfig_dropped_names_the_lines_kconfig_did_not_keep() -> None:
    wanted = "CONFIG_SH_IS_ASH=y\nCONFIG_ASH_ECHO=y\n\n"
    assert kconfig.kconfig_dropped(wanted, "CONFIG_SH_IS_ASH=y\n") == ["CONFIG_ASH_ECHO=y"]
    assert kconfig.kconfig_dropped(wanted, "CONFIG_ASH_ECHO=y\nCONFIG_SH_IS_ASH=y\n") == []


def test_the_kconfig_lines_are_in_the_key_only_for_kconfig_recipes() -> None:
    pin = DebSourcePin("tiny", "1.0-1", (DebSourceFile("tiny_1.0-1.dsc", "d" * 64, 1),))
    plain = source_build.Recipe(pin, (), (), ("bin/tiny",))
    with_config = source_build.Recipe(pin, (), (), ("bin/tiny",), kconfig="CONFIG_A=y\n")
    other = source_build.Recipe(pin, (), (), ("bin/tiny",), kconfig="CONFIG_B=y\n")
    assert "kconfig" not in source_build.key_inputs(plain, "gcc", {})
    keys = {source_build.cache_key(r, "gcc", {}) for r in (plain, with_config, other)}
    assert len(keys) == 3
