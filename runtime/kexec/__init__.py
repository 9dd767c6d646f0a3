"""Handing over to the chosen kernel with kexec (../shared/reference/heads-facts.md §5.3, §2.5).

  cmdline       the final kernel command line from an entry and ADD/REMOVE (pure)
  plan          the ``kexec -l`` arguments and files for one boot entry (pure)
  ram_copy      every file to load copied into RAM and hashed as it is copied
  load          writing the combined initrd and running ``kexec -l/-u/-e``
  freed_memory  whether the kernel zeroes freed memory (init_on_free), which the
                hand-over relies on
  finalize      PCR 4, TPM flush and platform lock, secret wipe, sync, unmount
  errors        KexecError, the plain-words error of plan, load and unmount
  handover      one boot: its files copied to RAM (checked against the signed hashes
                on a verified view), loaded, the hand-over prepared

The order at boot: plan_for, load, prepare_handover; then the runtime exits
and /init runs ``kexec -e``.
"""
