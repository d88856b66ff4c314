"""Helpers shared by the subcommands and the scripts (a helper module, not a subcommand): the help formatter, hidden
aliases, the shared flags (``--run-dir``, ``--num-threads``), logging, and the defaults a ``--builder`` fills in.

A builder's values are defaults: a flag given on the command line wins, then the recipe's value, then the command's
own default. Flags that a builder may fill are declared with ``default=None`` so that "not given" can be told apart.

This module imports only the standard library at its top, so that ``hf-dr --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from hf_dr.errors import InvalidConfigError

if TYPE_CHECKING:
    import datasets

    from hf_dr.generate.builder import Builder

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (examples keep their lines) and every option's default after its help.

    The default is left out where the help already names it (a flag a ``--builder`` fills says whose value wins) or
    says "required", for switches (``--quick``) and for required arguments. An option needs a help text to show it.

    Example:
        >>> parser = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
        >>> _ = parser.add_argument("--batch-size", type=int, default=128, help="views per forward")
        >>> "views per forward (default: 128)" in parser.format_help()
        True
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        said = "default" in text.lower() or "required" in text.lower()
        if (action.help is argparse.SUPPRESS or action.nargs == 0 or action.required or said
                or action.default is argparse.SUPPRESS or (not action.option_strings and action.nargs is None)):
            return action.help
        return f"{text} (default: %(default)s)".lstrip()


def add_option(container: Any, *flags: str, hidden: tuple[str, ...] = (), **kwargs: Any) -> argparse.Action:
    """``container.add_argument(*flags, *hidden, **kwargs)`` with the ``hidden`` spellings left out of ``--help`` and
    usage: they parse to the same action (same destination, type and requiredness), so old command lines work.

    Example:
        >>> parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
        >>> action = add_option(parser, "--dataset", hidden=("--source",), help="the source dataset")
        >>> parser.parse_args(["--source", "d"]).dataset, "--source" in parser.format_help(), action.hidden_aliases
        ('d', False, ('--source',))
    """
    action = container.add_argument(*flags, *hidden, **kwargs)
    for alias in hidden:  # the parser still maps the alias to the action; only the listing drops it
        action.option_strings.remove(alias)
    action.hidden_aliases = tuple(hidden)
    return action


def add_run_dir(container: Any, *, positional: bool = True, help: str = "the folder `hf-dr reinforce` wrote") -> None:
    """``--run-dir DIR``, the reinforcement run being read; ``positional`` also accepts it as a hidden first
    positional (the old spelling of ``push``, ``verify`` and ``show``). Check it with :func:`required_run_dir`."""
    container.add_argument("--run-dir", default=None, metavar="DIR", help=f"{help} (required)")
    if positional:
        container.add_argument("run_dir", nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_recorded_source(container: Any) -> None:
    """``--run-dir`` and the flags that override the source images a run recorded (``verify``, ``show``)."""
    add_run_dir(container)
    add_option(container, "--dataset", hidden=("--source",), default=None,
               help="source images, a Hub id or local path (default: the one the run recorded)")
    container.add_argument("--split", default=None, help="split of --dataset (default: the recorded one)")
    container.add_argument("--revision", default=None, help="revision of --dataset (default: the recorded one)")


def required_run_dir(args: argparse.Namespace) -> str:
    """``args.run_dir``, refused when neither ``--run-dir`` nor the positional gave it.

    Example:
        >>> required_run_dir(argparse.Namespace(run_dir=None))
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: pass --run-dir DIR, the folder `hf-dr reinforce --output-dir` wrote
    """
    if not args.run_dir:
        raise InvalidConfigError("pass --run-dir DIR, the folder `hf-dr reinforce --output-dir` wrote")
    return args.run_dir


def add_num_threads(container: Any, default: int | None = None, help: str | None = None) -> None:
    """``--num-threads N``: :func:`set_num_threads` runs it before any work (the CLI's ``main`` and the scripts)."""
    container.add_argument("--num-threads", type=int, default=default, metavar="N",
                           help=help or "torch.set_num_threads (default: torch's choice, one per core); 1 is "
                                        "often fastest on shared or busy cores")


def set_num_threads(num_threads: int | None) -> None:
    """``torch.set_num_threads(num_threads)`` when given (torch is imported only then)."""
    if num_threads:
        import torch

        torch.set_num_threads(num_threads)


def configure_logging(level: int = logging.INFO) -> None:
    """One log format for the CLI and the scripts (:data:`LOG_FORMAT`, timestamped) and ``level`` for hf_dr's
    loggers; other libraries stay at WARNING. A no-op for the format where logging is already configured."""
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger("hf_dr").setLevel(level)


def load_builder(name: str | None) -> Builder | None:
    """The recipe ``name`` from the ``builders`` package, or None without a name."""
    if not name:
        return None
    from hf_dr.builders import get_builder

    return get_builder(name)


def pick(explicit: Any, builder: Builder | None, attribute: str, default: Any = None) -> Any:
    """The flag's value if given, else the builder's ``attribute`` unless it is None, else ``default``.

    Example:
        >>> pick(None, None, "split", "train"), pick("test", None, "split", "train")
        ('train', 'test')
    """
    if explicit is not None:
        return explicit
    value = getattr(builder, attribute) if builder is not None else None
    if value is None:
        return default
    return list(value) if isinstance(value, tuple) else value


def apply_recipe(args: argparse.Namespace, builder: Builder | None, defaults: dict[str, Any]) -> None:
    """Fills the flags left out: each of ``defaults`` from the recipe, else its default; the source (dataset,
    configuration, revision, key column) from the recipe."""
    for flag, default in defaults.items():
        setattr(args, flag, pick(getattr(args, flag), builder, flag, default))
    if builder is not None:
        args.dataset = args.dataset or builder.dataset_id
        args.dataset_config = pick(args.dataset_config, builder, "config_name")
        args.revision = pick(args.revision, builder, "revision")
        args.key_column = pick(args.key_column, builder, "key_column")


def first_rows(dataset: datasets.Dataset, limit: int | None, flag: str = "--limit") -> datasets.Dataset:
    """The first ``limit`` rows of ``dataset`` (all of them for None); a limit beyond its size is refused.

    Example:
        >>> import datasets
        >>> first_rows(datasets.Dataset.from_dict({"x": [1, 2, 3]}), 2)[:]["x"]
        [1, 2]
        >>> first_rows(datasets.Dataset.from_dict({"x": [1, 2, 3]}), 5)
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: --limit 5 exceeds the dataset's 3 rows; pass --limit between 1 and 3 ...
    """
    if limit is None:
        return dataset
    if limit < 1 or limit > len(dataset):
        raise InvalidConfigError(
            f"{flag} {limit} exceeds the dataset's {len(dataset)} rows; pass {flag} between 1 and {len(dataset)} "
            f"(or leave it out to use every row)" if limit > len(dataset) else
            f"{flag} should be a positive number of rows, but got {limit} instead."
        )
    return dataset.select(range(limit))
