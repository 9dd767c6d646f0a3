"""The boot state machine (issue 5 grows it): today the start sequence."""
