"""What a user's OS offers to boot, read from its /boot (or an unpacked ISO)
exactly as the distribution meant it. Pure logic: each parser takes file
contents through a small file-system reader, and gives `BootEntry` values.

  entry        the shared entry type and the parse warnings
  fs           the read-only file-system reader parsers use (rooted, no escapes)
  heads_line   Heads' own entry line (name|elf|kernel ...), parse and print
  syslinux     syslinux / isolinux / extlinux configurations
  bls          Boot Loader Specification type 1 entries (with grubenv.py)
  grub         GRUB 2 configurations (grub_lexer.py: GRUB's word splitting)
(ISO images, Heads' listing and the JSON command follow: issue 6.)
"""

from runtime.boot_configs.entry import BootEntry, EntryKind, ParseWarning

__all__ = ["BootEntry", "EntryKind", "ParseWarning"]
