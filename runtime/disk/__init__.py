"""The Disk Unlock Key (DUK): a LUKS key sealed to the measured boot and
handed to the OS's initramfs at kexec, as Heads does.

Pure formats: key_lists.py (Heads' kexec_key_*.txt, kexec_lukshdr_hash.txt and
the crypttab overrides), crypttab.py (the lines the OS's initramfs reads),
key_cpio.py (the RAM-only cpio appended to the OS initrd), duk_policy.py (the
PCRs it is sealed to), luks_header.py (a header's first bytes, luksDump's slots).
Devices: luks_devices.py (finding the containers), cryptsetup_ops.py (key
slots, header backups), header_measure.py (PCR 6, every boot), duk_store.py
(the TPM). The two flows: duk_setup.py and duk_unlock.py.
"""
