"""Secrets the TPM releases to an unchanged machine: the TOTP/HOTP secret that
proves the firmware to the user (its enrolment, the codes, the HOTP token check),
the RAM store secrets are kept in between steps, and new TPM owner passphrases."""
