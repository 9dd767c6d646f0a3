"""The final kernel command line: each step of Heads' _build_final_cmdline (facts §5.3)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.kexec.cmdline import (
    ISO_KEYS,
    MAX_CMDLINE_BYTES,
    cmdline_warnings,
    final_cmdline,
    split_words,
)


def test_params_alone_pass_through_with_single_spaces() -> None:
    assert final_cmdline("  root=/dev/sda1\tro  quiet ") == "root=/dev/sda1 ro quiet"
    assert final_cmdline("") == ""


def test_step1_strips_the_separator() -> None:
    assert final_cmdline("placeholder --- console=hvc0") == "placeholder console=hvc0"
    assert final_cmdline("a---b", add="x ---") == "x ab"
    assert "---" not in final_cmdline("------- ----", board_add="---")


def test_step2_removes_words_from_params() -> None:
    assert final_cmdline("ro quiet splash root=x", remove="quiet splash") == "ro root=x"


def test_step2_removes_words_from_add() -> None:
    assert final_cmdline("ro", add="quiet debug", remove="quiet") == "debug ro"


def test_step2_removes_words_from_board_add() -> None:
    assert final_cmdline("ro", board_add="intel_iommu=on quiet", remove="quiet") == (
        "ro intel_iommu=on"
    )


def test_step2_compares_whole_words() -> None:
    assert final_cmdline("quiet=1 loglevel=3 quiet", remove="quiet") == "quiet=1 loglevel=3"


def test_step2_removes_every_occurrence() -> None:
    assert final_cmdline("quiet ro quiet", add="quiet", remove="quiet") == "ro"


def test_step3_add_comes_before_params() -> None:
    assert final_cmdline("root=x ro", add="fsck.mode=skip") == "fsck.mode=skip root=x ro"


def test_step4_iso_add_value_replaces_every_occurrence_once() -> None:
    params = "boot=casper iso-scan/filename=/old.iso quiet iso-scan/filename=/older.iso"
    add = "iso-scan/filename=/new.iso findiso=/new.iso"
    assert final_cmdline(params, add=add) == (
        "iso-scan/filename=/new.iso findiso=/new.iso boot=casper quiet"
    )


def test_step4_covers_every_iso_key() -> None:
    for key in ISO_KEYS:
        got = final_cmdline(f"{key}=old a {key}=older", add=f"{key}=new")
        assert got == f"{key}=new a", key


def test_step4_leaves_iso_keys_that_add_does_not_set() -> None:
    params = "img_dev=/dev/sdb1 img_dev=/dev/sdc1"
    assert final_cmdline(params, add="findiso=/x.iso") == f"findiso=/x.iso {params}"


def test_step4_keeps_repeated_non_iso_keys() -> None:
    assert final_cmdline("console=tty0", add="console=ttyS0") == "console=ttyS0 console=tty0"


def test_step5_appends_board_words_not_present() -> None:
    got = final_cmdline("ro quiet", add="debug", board_add="quiet intel_iommu=on debug iommu=pt")
    assert got == "debug ro quiet intel_iommu=on iommu=pt"


def test_step5_appends_a_repeated_board_word_once() -> None:
    assert final_cmdline("ro", board_add="a a b a") == "ro a b"


def test_quoted_words_stay_whole() -> None:
    assert split_words('a "b c"  d="e f g" h') == ["a", '"b c"', 'd="e f g"', "h"]
    params = 'root=x acpi_osi="Windows 2015" quiet'
    assert final_cmdline(params, remove="2015\" Windows") == params
    assert final_cmdline(params, board_add='acpi_osi="Windows 2015"') == params


def test_unterminated_quote_runs_to_the_end() -> None:
    assert split_words('a b="c d') == ["a", 'b="c d']


def test_warns_only_above_2047_bytes() -> None:
    assert cmdline_warnings("x" * MAX_CMDLINE_BYTES) == []
    (warning,) = cmdline_warnings("x" * (MAX_CMDLINE_BYTES + 1))
    assert "2048 bytes" in warning
    # bytes, not characters
    assert cmdline_warnings("é" * 1024)


def test_warns_about_an_unmatched_quote() -> None:
    (warning,) = cmdline_warnings('a="b c')
    assert "quote" in warning


# Words as a boot configuration writes them: plain, key=value, or a quoted value.
_plain = st.text(alphabet="abcq=-./_,0123456789", min_size=1, max_size=8)
_quoted = st.builds(lambda k, v: f'{k}="{v}"', _plain, st.text(alphabet="ab -", max_size=6))
_word = st.one_of(_plain, _quoted, st.just("---"), st.just("quiet"), st.sampled_from(
    sorted(f"{k}=v" for k in ISO_KEYS)))
_words = st.lists(_word, max_size=8)
_gap = st.sampled_from([" ", "  ", "\t"])


@given(params=_words, add=_words, remove=_words, board=_words, gap=_gap)
def test_property_remove_separator_and_board_words(
    params: list[str], add: list[str], remove: list[str], board: list[str], gap: str
) -> None:
    out = final_cmdline(gap.join(params), gap.join(add), gap.join(remove), gap.join(board))
    words = split_words(out)
    removed = set(split_words(" ".join(remove).replace("---", "")))
    assert "---" not in out
    assert not removed & set(words)
    before = split_words(final_cmdline(gap.join(params), gap.join(add), gap.join(remove)))
    for word in split_words(" ".join(board).replace("---", "")):
        if word in removed:
            continue
        # each board word is there; once, unless ADD or params already repeat it
        assert words.count(word) == max(1, before.count(word))
