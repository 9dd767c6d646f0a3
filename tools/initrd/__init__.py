"""Host-side pieces of build_initrd.py: the lock, the package cache, the
file selection (ELF and Python import closures), the cpio writer and the
reports. Never imported by runtime/."""
