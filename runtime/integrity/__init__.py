"""/boot's integrity: signed hash lists and the TPM rollback counter.

/boot is hostile input: its files are read through safe_read.py (no FIFO,
link or device, bounded), its paths resolved once by boot_paths.py, and the
boot menu reads it through boot_view.py (on a verified /boot, only what the
owner signed).

  preflight  does the TPM's rollback counter agree with /boot? (before anything
             is unsealed or signed)
"""
