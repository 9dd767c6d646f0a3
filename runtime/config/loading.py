"""Loading the settings: each layer's file read in turn, later layers winning.

Three files by default: the project's defaults, the board's defaults and the
owner's overrides (Heads' config.user, same format). A bad line never stops
the boot: it is reported, and the value from the layer below stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from runtime.config.config_file import Assignment, Problem, parse_config, read_config
from runtime.config.consistency import consistency_problems
from runtime.config.heads_keys import ALIASES, ONLY_DEFAULT, ignored_reason
from runtime.config.loaded_settings import BUILT_IN, LoadedSettings, Source
from runtime.config.schema import SCHEMA, Settings, unknown_key_message
from runtime.image_files import BOARD_CONFIG_PATH, DEFAULTS_CONFIG_PATH, USER_CONFIG_PATH


class Layer(NamedTuple):
    label: str  # for the Configuration page: where a value came from
    path: str
    required: bool = True  # missing: a warning (the owner's file may well be absent)


IMAGE_LAYERS = (
    Layer("project defaults", DEFAULTS_CONFIG_PATH),
    Layer("board defaults", BOARD_CONFIG_PATH),
    Layer("your settings", USER_CONFIG_PATH, required=False),
)


def load_settings(layers: Sequence[Layer | str] = IMAGE_LAYERS) -> LoadedSettings:
    """The settings from each layer in turn; never raises for bad files.

    A plain path is a required layer labelled by its path."""
    texts: dict[str, str] = {}
    sources: dict[str, Source] = {key: BUILT_IN for key in SCHEMA}
    problems: list[Problem] = []
    for layer in layers:
        if not isinstance(layer, Layer):
            layer = Layer(str(layer), str(layer))
        try:
            data = read_config(layer.path)
        except FileNotFoundError:
            if layer.required:
                problems.append(
                    Problem(
                        layer.path,
                        None,
                        None,
                        f"the {layer.label} file is "
                        "missing, so the values below it are used; the image "
                        "may be incomplete",
                        "warning",
                    )
                )
            continue
        except OSError as err:
            problems.append(
                Problem(
                    layer.path,
                    None,
                    None,
                    f"cannot be read ({err.strerror}), so none of its settings are used",
                )
            )
            continue
        parsed = parse_config(data, layer.path)
        found = list(parsed.problems)
        for assignment in parsed.assignments:
            _apply(assignment, layer.label, texts, sources, found)
        problems += sorted(found, key=lambda p: p.line or 0)  # in file order
    settings = Settings(texts)
    problems += consistency_problems(settings, sources)
    return LoadedSettings(settings, problems, sources)


def _apply(
    a: Assignment,
    label: str,
    texts: dict[str, str],
    sources: dict[str, Source],
    problems: list[Problem],
) -> None:
    key = ALIASES.get(a.key, a.key)
    if key != a.key:
        problems.append(
            Problem(
                a.path, a.line, a.key, f"an old name of {key}, read as {key}; rename it.", "note"
            )
        )
    reason = ignored_reason(key)
    if reason is not None:
        problems.append(
            Problem(
                a.path,
                a.line,
                key,
                f"ignored: {reason}. The line has no effect; you may remove it.",
                "note",
            )
        )
        return
    setting = SCHEMA.get(key)
    if setting is None:
        problems.append(
            Problem(a.path, a.line, key, unknown_key_message(key) + " Fix or remove the line.")
        )
        return
    try:
        value = setting.kind.parse(a.value)
    except ValueError as err:
        kept = setting.kind.show(setting.kind.parse(texts.get(key, setting.default)))
        problems.append(
            Problem(
                a.path,
                a.line,
                key,
                f"{err}; expected {setting.kind.expects}. Kept {kept!r} from the {sources[key]}.",
            )
        )
        return
    if key in ONLY_DEFAULT and value != setting.kind.parse(setting.default):
        honoured = setting.kind.show(setting.kind.parse(setting.default))
        problems.append(
            Problem(
                a.path,
                a.line,
                key,
                f"not supported: {ONLY_DEFAULT[key]}. "
                f"The line has no effect: the runtime behaves as {honoured!r}.",
                "warning",
            )
        )
        return
    texts[key] = a.value
    sources[key] = Source(label, a.path, a.line)
