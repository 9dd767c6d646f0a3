"""Writing one value to the owner's settings file (config.user), checked first
and written atomically so a failure leaves the old file whole.
"""

from __future__ import annotations

from runtime.config.config_file import (
    LineError,
    format_assignment,
    read_config,
    replace_assignment,
    write_atomically,
)
from runtime.config.heads_keys import ALIASES, ONLY_DEFAULT, ignored_reason
from runtime.config.schema import SCHEMA, SettingError, unknown_key_message


def set_user_value(path: str, key: str, value: str) -> None:
    """Set key to value in the owner's file, keeping its other lines and comments.

    Validates first; writes atomically (the old file stays whole on failure).
    Raises SettingError with a message for the screen."""
    setting = SCHEMA.get(key)
    if setting is None:
        reason = ignored_reason(key)
        raise SettingError(
            f"{key}: "
            + (f"not used by this runtime: {reason}." if reason else unknown_key_message(key))
            + " Nothing was saved."
        )
    try:
        parsed = setting.kind.parse(value)
        line = format_assignment(key, value)
    except (ValueError, LineError) as err:
        raise SettingError(
            f"{key}: {err}; expected {setting.kind.expects}. Nothing was saved."
        ) from None
    if key in ONLY_DEFAULT and parsed != setting.kind.parse(setting.default):
        raise SettingError(f"{key}: not supported: {ONLY_DEFAULT[key]}. Nothing was saved.")
    try:
        old = read_config(path)
    except FileNotFoundError:
        old = b""
    except OSError as err:
        raise SettingError(f"cannot read {path} ({err.strerror}); nothing was saved.") from None
    keys = frozenset({key, *(old_name for old_name, new in ALIASES.items() if new == key)})
    # surrogateescape: bytes that are not UTF-8 in other lines are written back unchanged.
    text = replace_assignment(old.decode("utf-8", "surrogateescape"), keys, line)
    try:
        write_atomically(path, text.encode("utf-8", "surrogateescape"))
    except OSError as err:
        raise SettingError(
            f"could not save {key} to {path} ({err.strerror or err}); the file is unchanged."
        ) from None
