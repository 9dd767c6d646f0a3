"""What a user's OS offers to boot, read from its /boot (or an unpacked ISO)
exactly as the distribution meant it. Pure logic: each parser takes file
contents through a small file-system reader, and gives `BootEntry` values.

  entry        the shared entry type and the parse warnings
  heads_line   Heads' own entry line (name|elf|kernel ...), parse and print
"""

from runtime.boot_configs.entry import BootEntry, EntryKind, ParseWarning

__all__ = ["BootEntry", "EntryKind", "ParseWarning"]
