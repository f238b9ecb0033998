"""What ``posezoo --help`` and ``--version`` show: every option with its default, the version, and a model's
training recipe under ``posezoo train MODEL --help``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import metadata
from typing import Any

__all__ = ["DefaultsFormatter", "TrainHelpAction", "default_text", "package_version"]


def package_version() -> str:
    """The installed posezoo version (package metadata; ``posecommon.__version__`` in a source tree without it)."""
    try:
        return metadata.version("posezoo")
    except metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def default_text(action: argparse.Action) -> str | None:
    """How an option's default reads in ``--help``; None when the help text already says it (or there is none)."""
    if not action.option_strings or action.default is argparse.SUPPRESS:
        return None
    if "default" in (action.help or "").lower():
        return None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "off" if action.default is False else "on"
    if action.default is None:
        return "not set"
    if isinstance(action.default, (list, tuple)):
        return " ".join(str(v) for v in action.default) if action.default else "none"
    return str(action.default)


class DefaultsFormatter(argparse.HelpFormatter):
    """Help formatter that ends every option's help with ``(default: ...)`` unless the text gives it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = default_text(action)
        if default is None:
            return text
        return f"{text} (default: {default.replace('%', '%%')})".lstrip()


class TrainHelpAction(argparse.Action):
    """``-h/--help`` of ``posezoo train``: the options, then, when a model was named before it, that model's recipe
    with the flags given before ``--help`` (:func:`~posecommon.app.train_run.recipe_help`), without training.

    Args:
        option_strings: ``("-h", "--help")``.
        dest: Unused.
        describe: ``describe(namespace) -> str``: the recipe text for the flags parsed so far.
    """

    def __init__(
        self, option_strings: list[str], dest: str, describe: Callable[[argparse.Namespace], str], **kwargs: Any
    ) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS, **kwargs)
        self.describe = describe

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, *args: Any) -> None:
        parser.print_help()
        if getattr(namespace, "model", None):
            print()
            print(self.describe(namespace))
        parser.exit()
