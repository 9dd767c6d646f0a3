"""What each state of runtime.state.machine does: one function per state,
taking the `Context` and returning the event that ends the state.

  start       early init, measuring, finding /boot, rollback preflight, keyring
  attest      TOTP, HOTP, the automatic boot countdown
  menus       the main menu, options and their sub-menus, information pages
  secret      generating and enrolling a new TOTP/HOTP secret
  tpm_reset   resetting the TPM with a new owner passphrase
  lockout     the TPM's dictionary-attack lockout, explained and cleared
  actions     the clock, the recovery shell's confirmation
  boot        default boot, OS menu, refusal, unsafe boot, update checksums and sign
  root        the root file system's hashes
  report      the integrity report
"""

from runtime.state.steps.context import Context, Step

__all__ = ["Context", "Step"]
