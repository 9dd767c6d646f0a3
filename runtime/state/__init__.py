"""The boot as a state machine: states, events and transitions as data (machine.py), what
each state does (steps/), the one verdict from the evidence (verdict.py), and the real
platform the steps ask (device_platform.py and its phases); the UI talks only to it."""
