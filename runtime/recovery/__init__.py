"""The recovery shell's gate: PCR 4 extended, RAM secrets wiped and the owner
authenticated, in that order, before /init may open a shell
(``python3.11 -I -m runtime.recovery --reason TEXT``)."""
