"""The runtime's settings: Heads-compatible CONFIG_* keys, typed and validated.

One import for every settings name; each concern lives in its own module:
schema (the known keys), heads_keys (Heads keys treated specially), loading
(the layered files), loaded_settings (values and their sources), consistency
(checks across keys) and user_values (writing the owner's file).
"""

from __future__ import annotations

from runtime.config.consistency import consistency_problems
from runtime.config.heads_keys import ALIASES, IGNORED, ONLY_DEFAULT, ignored_reason
from runtime.config.loaded_settings import (
    BUILT_IN,
    SCHEMA_KEY_PRIMARY_NAME,
    UNMATCHABLE_NAME,
    LoadedSettings,
    SettingRow,
    Source,
)
from runtime.config.loading import IMAGE_LAYERS, Layer, load_settings
from runtime.config.schema import SCHEMA, SettingError, Settings, unknown_key_message
from runtime.config.user_values import set_user_value

__all__ = [
    "ALIASES",
    "BUILT_IN",
    "IGNORED",
    "IMAGE_LAYERS",
    "ONLY_DEFAULT",
    "SCHEMA",
    "SCHEMA_KEY_PRIMARY_NAME",
    "UNMATCHABLE_NAME",
    "Layer",
    "LoadedSettings",
    "SettingError",
    "SettingRow",
    "Settings",
    "Source",
    "consistency_problems",
    "ignored_reason",
    "load_settings",
    "set_user_value",
    "unknown_key_message",
]
