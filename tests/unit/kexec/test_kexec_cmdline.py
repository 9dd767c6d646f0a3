"""The final kernel command line: each step of Heads' _build_final_cmdline
(../shared/reference/heads-facts.md §5.3)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.kexec.cmdline import (
    END_OF_KERNEL_PARAMS,
    ISO_KEYS,
    MAX_CMDLINE_BYTES,
    cmdline_refusal,
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


def test_step5_board_words_go_before_a_standalone_double_dash() -> None:
    # after '--' the kernel hands words to init: board words there would be lost
    got = final_cmdline("root=x ro -- single", board_add="intel_iommu=on iommu=pt")
    assert got == "root=x ro intel_iommu=on iommu=pt -- single"
    # the kernel strips the quotes around a parameter first
    assert final_cmdline('ro "--" single', board_add="b") == 'ro b "--" single'
    # before the first one only
    assert final_cmdline("a -- b -- c", board_add="x") == "a x -- b -- c"
    assert final_cmdline("-- a", board_add="x") == "x -- a"
    assert final_cmdline("ro --", add="debug", board_add="x") == "debug ro x --"


def test_step5_a_double_dash_that_is_not_a_word_changes_nothing() -> None:
    assert final_cmdline('a="x -- y" --=1 --- z', board_add="b") == 'a="x -- y" --=1 z b'


def test_step5_a_board_word_seen_only_by_init_is_still_given_to_the_kernel() -> None:
    assert final_cmdline("ro -- quiet", board_add="quiet") == "ro quiet -- quiet"
    assert final_cmdline("quiet -- quiet", board_add="quiet") == "quiet -- quiet"


def test_quoted_words_stay_whole() -> None:
    assert split_words('a "b c"  d="e f g" h') == ["a", '"b c"', 'd="e f g"', "h"]
    params = 'root=x acpi_osi="Windows 2015" quiet'
    assert final_cmdline(params, remove='2015" Windows') == params
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


def test_refuses_an_unmatched_quote() -> None:
    # the board's words land inside the quoted run: the kernel never sees them
    cmdline = final_cmdline('root=x acpi_osi="Windows', board_add="intel_iommu=on")
    assert cmdline == 'root=x acpi_osi="Windows intel_iommu=on'
    assert "unmatched double quote" in cmdline_refusal(cmdline)
    assert cmdline_refusal('a="b" c="d') != ""
    assert cmdline_refusal('"') != ""


def test_does_not_refuse_balanced_quotes() -> None:
    assert cmdline_refusal("") == ""
    assert cmdline_refusal("root=x ro quiet -- single") == ""
    assert cmdline_refusal('acpi_osi="Windows 2015" a="" "--"') == ""
    # too long is a warning, not a refusal
    assert cmdline_refusal("x" * (MAX_CMDLINE_BYTES + 1)) == ""


# Words as a boot configuration writes them: plain, key=value, or a quoted value.
_plain = st.text(alphabet="abcq=-./_,0123456789", min_size=1, max_size=8)
_quoted = st.builds(lambda k, v: f'{k}="{v}"', _plain, st.text(alphabet="ab -", max_size=6))
_word = st.one_of(
    _plain,
    _quoted,
    st.just("---"),
    st.just("quiet"),
    st.sampled_from(sorted(f"{k}=v" for k in ISO_KEYS)),
)
_words = st.lists(_word, max_size=8)
# params and ADD may hold a standalone '--' (the rest goes to init)
_entry_words = st.lists(st.one_of(_word, st.sampled_from(sorted(END_OF_KERNEL_PARAMS))), max_size=8)
_gap = st.sampled_from([" ", "  ", "\t"])


def _kernel_and_init(words: list[str]) -> tuple[list[str], list[str]]:
    """The words the kernel reads, and those from the first '--' on."""
    end = next((i for i, w in enumerate(words) if w in END_OF_KERNEL_PARAMS), len(words))
    return words[:end], words[end:]


@given(params=_entry_words, add=_entry_words, remove=_words, board=_words, gap=_gap)
def test_property_remove_separator_and_board_words(
    params: list[str], add: list[str], remove: list[str], board: list[str], gap: str
) -> None:
    out = final_cmdline(gap.join(params), gap.join(add), gap.join(remove), gap.join(board))
    words = split_words(out)
    removed = set(split_words(" ".join(remove).replace("---", "")))
    assert "---" not in out
    assert not removed & set(words)
    before = split_words(final_cmdline(gap.join(params), gap.join(add), gap.join(remove)))
    kernel, init = _kernel_and_init(words)
    kernel_before, init_before = _kernel_and_init(before)
    # the board's own kernel words (a '--' of the board's own ends them)
    board_kernel, board_init = _kernel_and_init(split_words(" ".join(board).replace("---", "")))
    for word in board_kernel:
        if word in removed:
            continue
        # each board word reaches the kernel, before any standalone '--';
        # once, unless ADD or params already repeat it there
        assert kernel.count(word) == max(1, kernel_before.count(word))
    if not board_init:
        # what init gets is the entry's, untouched
        assert init == init_before
