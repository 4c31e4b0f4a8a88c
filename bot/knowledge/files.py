"""Reading the knowledge folder's YAML files, with one error message for every file that cannot be read."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.errors import ConfigError

# libyaml's parser, when PyYAML was built with it, reads the topics several times faster than pure Python:
# it decides how long the bot and ``unlockbot faq`` take to start.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> object:
    """The parsed content of ``path``; a ``ConfigError`` naming the file when it cannot be read or parsed."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506  (a safe loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
