"""The one error boundary of ``hf-dr`` and of every ``scripts/*.py`` (a helper module, not a subcommand).

A user's mistake (any :class:`~hf_dr.errors.HfDrError`, a usage error, a file that is missing, unreadable or not
writable, a full disk, a JSON file with a typo) ends the command with ONE line on stderr, ``PROG: error: MESSAGE``,
the message naming the input and the fix, and exit status 1. ``HF_DR_DEBUG=1`` in the environment, or ``--debug``
anywhere on the command line, shows the traceback instead. Anything else is a bug of hf_dr or of a library, and
keeps its traceback: hiding it would hide the bug.

Numbers are checked where they are parsed: :func:`check_numbers` gives every count, size, seed and std flag of a
parser (by its destination, :data:`NUMBER_TYPES`) a type that refuses a value out of range with the flag's name.

This module imports only the standard library and :mod:`hf_dr.errors` at its top, so ``hf-dr --help`` stays fast.

Example:
    >>> parser = ArgumentParser(prog="hf-dr x")
    >>> _ = parser.add_argument("--seed", type=int, default=0)
    >>> check_numbers(parser)
    >>> parser.parse_args(["--seed", "-3"])
    Traceback (most recent call last):
    ...
    hf_dr.errors.InvalidConfigError: argument --seed: should be an integer >= 0, but got '-3' instead; see ...
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hf_dr.errors import HfDrError, InvalidConfigError

DEBUG_ENV = "HF_DR_DEBUG"
DEBUG_FLAG = "--debug"
DEBUG_EPILOG = "A mistake prints one line and exits with status 1; add --debug (or HF_DR_DEBUG=1) for its traceback."
# OSErrors that say something about the user's files or disk, even without a file name
_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR,
                errno.EISDIR, errno.EEXIST}


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose usage errors raise :class:`InvalidConfigError` (one line at the
    boundary, exit status 1) instead of printing the usage and exiting with status 2. Subparsers inherit it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise usage_error(self.prog, message)


def usage_error(prog: str, message: str) -> InvalidConfigError:
    """The usage error ``message`` of the parser ``prog``, pointing at its ``--help``.

    Example:
        >>> print(usage_error("hf-dr verify", "unrecognized arguments: --bogus"))
        unrecognized arguments: --bogus; see `hf-dr verify --help`
    """
    error = InvalidConfigError(f"{message}; see `{prog} --help`")
    error.usage = True  # already says where the help is (a parser that wraps errors must not wrap it again)
    return error


def _number(kind: type, minimum: float, strict: bool = False) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, refused unless finite and ``>= minimum`` (``> minimum`` when ``strict``)."""
    noun = "an integer" if kind is int else "a number"
    wanted = f"{noun} {'>' if strict else '>='} {minimum:g}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"should be {wanted}, but got {text!r} instead") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"should be {wanted}, but got {text!r} instead")
        return value

    parse.__name__ = wanted
    return parse


def _channels(text: str) -> int:
    """An argparse type: input channels, 1 (grayscale images, mode "L") or 3 (RGB): the images hf_dr gives."""
    if text.strip() not in ("1", "3"):
        raise argparse.ArgumentTypeError(f"should be 1 (grayscale, image mode L) or 3 (RGB), but got {text!r} instead")
    return int(text)


NON_NEGATIVE_INT = _number(int, 0)
POSITIVE_INT = _number(int, 1)
POSITIVE_FLOAT = _number(float, 0, strict=True)
NON_NEGATIVE_FLOAT = _number(float, 0)
# destination -> (the type of an int flag, the type of a float flag): what every command and script accepts
NUMBER_TYPES: dict[str, tuple[Callable[[str], Any], Callable[[str], Any]]] = {
    **dict.fromkeys(("seed", "seeds", "kd_seeds", "sweep_seeds", "index", "num_workers"),
                    (NON_NEGATIVE_INT, NON_NEGATIVE_FLOAT)),
    **dict.fromkeys(("num_pairs", "count", "image_size", "columns", "num_samples", "topk", "shard_size", "batch_size",
                     "limit", "eval_limit", "num_classes", "num_threads", "num_members", "label_draws",
                     "subset_size", "test_size", "num_teachers", "teacher_epochs", "teacher_train_size", "epochs",
                     "calibration_size", "selection_keep", "gradient_accumulation_steps", "max_steps", "log_every",
                     "severities"),
                    (POSITIVE_INT, POSITIVE_FLOAT)),
    **dict.fromkeys(("std", "lr", "teacher_lr", "temperature", "label_temperature", "epoch_scales"),
                    (POSITIVE_INT, POSITIVE_FLOAT)),
    "in_chans": (_channels, _channels),
    **dict.fromkeys(("weight_decay", "warmup_fraction", "label_smoothing"), (NON_NEGATIVE_INT, NON_NEGATIVE_FLOAT)),
}


def check_numbers(parser: argparse.ArgumentParser) -> None:
    """Gives every ``int`` or ``float`` flag of ``parser`` whose destination is in :data:`NUMBER_TYPES` its checked
    type: a negative seed, a zero count or size, a zero std are refused as they are parsed, naming the flag."""
    for action in parser._actions:
        if action.dest in NUMBER_TYPES and action.type in (int, float):
            action.type = NUMBER_TYPES[action.dest][action.type is float]


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is a mistake of the user (their input, files or disk) rather than a bug: an
    :class:`HfDrError`, a JSON file that does not parse, or an ``OSError`` about a file or the disk."""
    if isinstance(err, (HfDrError, json.JSONDecodeError)):
        return True
    return isinstance(err, OSError) and (err.filename is not None or err.errno in _USER_ERRNOS
                                         or isinstance(err, (FileNotFoundError, PermissionError)))


def error_line(err: BaseException) -> str:
    """The one-line message of the user error ``err``: its text on one line; an ``OSError`` names the file and
    what to do.

    Example:
        >>> error_line(PermissionError(errno.EACCES, "Permission denied", "out/model.safetensors"))
        "cannot write or read 'out/model.safetensors': Permission denied. Make it (and its folder) writable for ...
    """
    if isinstance(err, OSError) and not isinstance(err, HfDrError) and err.strerror:
        target = f" {err.filename!r}" if err.filename is not None else ""
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = "Free space on that disk, or write to another one (--output-dir)."
        elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = "Make it (and its folder) writable for this user, or pass another path (--output-dir, -o)."
        elif err.errno == errno.ENOENT:
            fix = "Check the path (and that its folder exists)."
        else:
            fix = "Check the path: a folder where a file is expected, or a file where a folder is."
        verb = "cannot write or read" if target else "a file operation failed"
        text = f"{verb}{target}: {err.strerror}. {fix}"
    elif isinstance(err, json.JSONDecodeError):
        text = f"a JSON file does not parse: {err.msg} at line {err.lineno}, column {err.colno}; fix the file"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def debugging(argv: Sequence[str]) -> bool:
    """Whether tracebacks are shown: ``HF_DR_DEBUG`` set (not ``0``) or ``--debug`` in ``argv``."""
    return os.environ.get(DEBUG_ENV, "0").strip().lower() not in ("", "0", "false", "no") or DEBUG_FLAG in argv


def run_main(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Runs ``main(argv)`` (``sys.argv[1:]`` by default, ``--debug`` removed) inside the error boundary and returns
    the exit status: ``main``'s own int, 0 for any other result, 1 after a user error printed as
    ``PROG: error: MESSAGE`` (``prog`` defaults to the script's file name). See the module docstring.

    Example:
        >>> def main(argv):
        ...     raise InvalidConfigError(f"--num-pairs {argv[0]} is not a count;\\nmust be >= 1")
        >>> run_main(main, ["0"], prog="hf-dr verify")
        1
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debugging(argv)
    argv = [word for word in argv if word != DEBUG_FLAG]
    try:
        result = main(argv)
    except Exception as err:
        if debug or not is_user_error(err):
            raise
        print(f"{prog or os.path.basename(sys.argv[0])}: error: {error_line(err)}", file=sys.stderr)
        return 1
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
