"""/boot's integrity: signed hash lists and the TPM rollback counter.

  preflight  does the TPM's rollback counter agree with /boot? (before anything
             is unsealed or signed)
"""
