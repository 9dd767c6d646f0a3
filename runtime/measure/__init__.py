"""What the runtime measures and checks: kernel modules (PCR 5, before they
load), and the replay of the firmware's event log plus the runtime's own
extends against the TPM's PCRs."""
