"""Board and owner configuration.

The board file is /etc/board.json in the image (board.py); the settings
(Heads-style CONFIG_* keys, settings.py and the modules it gathers) come from
/etc/runtime/{defaults.config,board.config,config.user}.
"""

from runtime.config.board import BoardConfig, ConfigError, load_board, parse_board
from runtime.config.config_file import Problem
from runtime.config.settings import (
    IMAGE_LAYERS,
    SCHEMA,
    Layer,
    LoadedSettings,
    SettingError,
    SettingRow,
    Settings,
    Source,
    load_settings,
    set_user_value,
)

__all__ = [
    "IMAGE_LAYERS",
    "SCHEMA",
    "BoardConfig",
    "ConfigError",
    "Layer",
    "LoadedSettings",
    "Problem",
    "SettingError",
    "SettingRow",
    "Settings",
    "Source",
    "load_board",
    "load_settings",
    "parse_board",
    "set_user_value",
]
