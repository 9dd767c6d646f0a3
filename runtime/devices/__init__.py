"""The machine's devices as the runtime uses them directly: power off and reboot,
the clock and the time zone on screen, the /boot partition and the OS's root file
system, the keyboard layout and the recovery shell's serial line."""
