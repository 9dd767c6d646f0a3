"""Board and user configuration (the board file is /etc/board.toml in the image)."""

from runtime.config.board import BoardConfig, ConfigError, load_board, parse_board

__all__ = ["BoardConfig", "ConfigError", "load_board", "parse_board"]
