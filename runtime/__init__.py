"""The measured-boot runtime that runs inside the firmware's initramfs."""
