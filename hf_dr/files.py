"""The one way hf_dr writes files: atomically, and JSON as indented, key-sorted text.

Every file a reinforcement run, a push, a teacher fine-tuning or the demo writes (JSON records, Parquet shards,
safetensors checkpoints, figures, Markdown) is written under a temporary name next to its target
(``NAME.tmp-<12 hex digits>``), flushed to disk and renamed into place with :func:`os.replace`. A killed process
leaves either the whole new file or the old one, plus at most a temporary that :func:`find_temporaries` finds (the
next run removes them).

A write that fails for want of space or permission raises :class:`~hf_dr.errors.OutputWriteError` naming the file
and the fix, not a bare ``OSError``. A leaf module: it imports nothing from hf_dr but its errors, so any layer may use
it.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

from hf_dr.errors import HfDrError, InvalidConfigError, OutputWriteError

TEMPORARY_INFIX = ".tmp-"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def temporary_path(path: str | os.PathLike) -> str:
    """A fresh temporary name next to ``path``: ``PATH.tmp-<12 hex digits>``.

    Example:
        >>> temporary_path("run/manifest.json").startswith("run/manifest.json.tmp-")
        True
    """
    return f"{os.fspath(path)}{TEMPORARY_INFIX}{uuid.uuid4().hex[:12]}"


def write_atomic(path: str | os.PathLike, write: Callable[[str], Any]) -> str:
    """Calls ``write(temporary_path)``, flushes the file to disk, then renames it to ``path`` (all or nothing).

    The folder of ``path`` is created if needed. If ``write`` raises, the temporary is removed and ``path`` keeps its
    old content. Writers that pick a format from the file extension need it given explicitly (the temporary's name
    ends in ``.tmp-...``), e.g. ``lambda tmp: figure.savefig(tmp, format="png")``.

    Args:
        path (`str` or `os.PathLike`): the file to (re)place.
        write (`Callable[[str], Any]`): writes the whole file at the path it is given.

    Returns:
        `str`: ``path``.

    Example:
        >>> import os, pathlib, tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "out", "hello.txt")
        >>> _ = write_atomic(target, lambda tmp: pathlib.Path(tmp).write_text("hello"))
        >>> open(target).read(), os.listdir(os.path.dirname(target))
        ('hello', ['hello.txt'])
    """
    path = os.fspath(path)
    temporary = temporary_path(path)
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        write(temporary)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as err:
        raise write_error(path, err) from err
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def write_error(path: str | os.PathLike, err: OSError) -> OSError:
    """``err`` raised while writing ``path``, as :class:`~hf_dr.errors.OutputWriteError` naming the file and the fix
    when the disk is full or the folder not writable; other errors (and hf_dr's own) unchanged.

    Example:
        >>> print(write_error("run/shards/a.parquet", OSError(errno.ENOSPC, "No space left on device")))
        cannot write run/shards/a.parquet: No space left on device (errno 28). Free space on that disk (or pass...
    """
    if isinstance(err, HfDrError) or err.errno not in _NO_SPACE + _NOT_WRITABLE:
        return err
    if err.errno in _NO_SPACE:
        fix = ("Free space on that disk (or pass another --output-dir on a disk with room) and rerun the same "
               "command: a reinforce run resumes from its finished shards.")
    else:
        fix = (f"Make {os.path.dirname(os.fspath(path)) or '.'!r} writable for this user, or pass another "
               "--output-dir.")
    error = OutputWriteError(f"cannot write {os.fspath(path)}: {err.strerror or err} (errno {err.errno}). {fix}")
    error.errno = err.errno
    return error


def write_text_atomic(path: str | os.PathLike, text: str) -> str:
    """Writes ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)

    return write_atomic(path, write)


def json_text(content: Any) -> str:
    """``content`` as indented, key-sorted JSON with a final newline: the same content gives the same bytes.

    Example:
        >>> print(json_text({"b": (1, 2), "a": None}), end="")
        {
          "a": null,
          "b": [
            1,
            2
          ]
        }
    """
    return json.dumps(content, indent=2, sort_keys=True) + "\n"


def write_json_atomic(path: str | os.PathLike, content: Any) -> str:
    """Writes ``content`` as :func:`json_text` to ``path`` atomically; returns ``path``.

    Example:
        >>> import os, tempfile
        >>> path = write_json_atomic(os.path.join(tempfile.mkdtemp(), "record.json"), {"rows": 3, "done": True})
        >>> read_json(path)
        {'done': True, 'rows': 3}
    """
    return write_text_atomic(path, json_text(content))


def read_json(path: str | os.PathLike, what: str | None = None, fix: str = "") -> Any:
    """The JSON content of ``path``. With ``what`` (e.g. ``"teacher spec file"``), a file that is not JSON or not
    UTF-8 raises :class:`~hf_dr.errors.InvalidConfigError` naming it, the position of the error and ``fix``.

    Example:
        >>> import os, tempfile
        >>> path = write_text_atomic(os.path.join(tempfile.mkdtemp(), "spec.json"), '[{"arch": "resnet18",}]')
        >>> read_json(path, what="teacher spec file", fix="a JSON list of members")
        Traceback (most recent call last):
        ...
        hf_dr.errors.InvalidConfigError: teacher spec file '...spec.json' is not valid JSON: Expecting property name...
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        if what is None:
            raise
        where = f"{err.msg} at line {err.lineno}, column {err.colno}" if isinstance(err, json.JSONDecodeError) \
            else f"not UTF-8 text: {err.reason} at byte {err.start}"
        raise InvalidConfigError(f"{what} {os.fspath(path)!r} is not valid JSON: {where}. Fix it: {fix}.") from err


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex).

    Example:
        >>> import os, tempfile
        >>> path = write_text_atomic(os.path.join(tempfile.mkdtemp(), "empty.txt"), "")
        >>> file_sha256(path)[:16]
        'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def find_temporaries(folder: str | os.PathLike, name: str = "", recursive: bool = False) -> list[str]:
    """Temporaries of :func:`write_atomic` left in ``folder`` by killed processes (those of file ``name`` only,
    when given; in every subfolder too with ``recursive``). Also matches the hidden ``.NAME.tmp-*`` files that
    earlier versions wrote Parquet shards to.

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> open(os.path.join(folder, "a.parquet.tmp-0123456789ab"), "w").close()
        >>> [os.path.basename(p) for p in find_temporaries(folder, "a.parquet")]
        ['a.parquet.tmp-0123456789ab']
    """
    parts = [os.fspath(folder)] + (["**"] if recursive else []) + [f"*{glob.escape(name)}*{TEMPORARY_INFIX}*"]
    return sorted(glob.glob(os.path.join(*parts), recursive=recursive, include_hidden=True))


def to_json_value(value: Any) -> Any:
    """``value`` with tuples turned into lists, in nested dicts and lists too: the form ``to_dict`` methods return
    (what :func:`json.loads` gives back, so a JSON round trip compares equal).

    Example:
        >>> to_json_value({"input_size": (3, 32, 32), "ops": [{"scale": (0.08, 1.0)}], "name": "rrc"})
        {'input_size': [3, 32, 32], 'ops': [{'scale': [0.08, 1.0]}], 'name': 'rrc'}
    """
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return value
