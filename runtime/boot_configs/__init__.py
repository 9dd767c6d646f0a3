"""What a user's OS offers to boot, read from its /boot (or an unpacked ISO)
exactly as the distribution meant it. Pure logic: each parser takes file
contents through a small file-system reader, and gives `BootEntry` values.

  entry          the shared entry type and the parse warnings
  fs             the read-only file-system reader parsers use (rooted, no escapes)
  grub           GRUB 2 configurations: grub_lexer (GRUB's word splitting),
                 grub_blocks (braces, if/elif/else, menuentry/submenu/function bodies),
                 grub_eval (walks the blocks within budgets), grub_commands (the
                 command table), grub_vars (variables and $ expansion),
                 grub_test_builtin (`test` / `[ ]`), grub_menu (titles, ids, default)
  syslinux       syslinux / isolinux / extlinux configurations
  bls            Boot Loader Specification type 1 entries (with grubenv.py)
  iso            a live ISO kept as a file: loopback.cfg, then grub.cfg, isolinux
  discover       every configuration under a root, and the menu (missing files
                 hidden, repeats shown once); report.py: entries as JSON
  heads_line     Heads' own entry line (name|elf|kernel ...), parse and print
  heads_listing  the menu exactly as Heads lists it (heads_shell.py: the shell
                 behaviours it depends on), so its saved default keeps meaning
  heads_default  kexec_default.N.txt: read, matched against the listing, written
  __main__       python3 -m runtime.boot_configs DIR: the entries as JSON
"""

from runtime.boot_configs.entry import BootEntry, EntryKind, ParseWarning

__all__ = ["BootEntry", "EntryKind", "ParseWarning"]
