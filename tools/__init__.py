"""Host-only helpers (never imported by runtime/, never in the initramfs)."""
