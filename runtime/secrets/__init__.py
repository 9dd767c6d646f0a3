"""Secrets the TPM releases to an unchanged machine: the TOTP/HOTP secret
that proves the firmware to the user, and (issue 7) the disk key."""
