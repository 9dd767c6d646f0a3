"""How long each kind of gpg run may take before it is killed. gpg can wait
without end on a card, an agent or a lock file; a firmware menu must not wait
with it."""

from __future__ import annotations

#: checking a signature against the owner's public key: gpg alone, no agent or card
CHECK_TIMEOUT_S = 30.0
#: listing the fingerprints in the firmware's key file (the keyring page)
KEYRING_SCAN_TIMEOUT_S = 30.0
#: loading the owner's key into a signing home, asking the card for its key stubs
SIGNING_HOME_TIMEOUT_S = 60.0
#: one signature: a card may ask for a touch or be slow to wake
SIGN_TIMEOUT_S = 120.0
#: stopping the daemons gpg started for a home (gpg-agent, scdaemon, keyboxd)
DAEMON_STOP_TIMEOUT_S = 30.0
#: making or exporting a key (host tools and tests: never on the firmware)
KEY_MAKING_TIMEOUT_S = 120.0
