"""What each state of runtime.state.machine does: one function per state,
taking the `Context` and returning the event that ends the state.

  start       early init, measuring, finding /boot, rollback preflight, keyring
  attest      TOTP, HOTP, the automatic boot countdown
  menus       the main menu, options and their sub-menus, information pages
  actions     generating the secret, resetting the TPM, the clock, the recovery
              shell's confirmation
  boot        default boot, OS menu, refusal, unsafe boot, update checksums and sign
"""

from runtime.state.steps.context import Context, Step

__all__ = ["Context", "Step"]
