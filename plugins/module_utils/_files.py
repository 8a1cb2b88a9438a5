# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Safe file handling for the collection's modules and the token refresher.

PRIVATE to the collection: do not import it from other collections.

Like ``_jose``, this file uses the standard library only, so that code outside Ansible (the
token refresher) writes files exactly as the modules do: into a temporary file in the target
directory created with mode 0600, flushed and fsync'ed, then renamed over the target, so a
reader sees the old file or the new one and never a partial file, and a secret is never
readable by others, not even for a moment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import os
import re
import stat
import tempfile
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None


class FileError(Exception):
    """A file could not be read or written; the message says which and why."""


def check_path(path, what="file"):
    """Refuse a path that no file can have (the os functions raise ValueError for those)."""
    if (b"\0" if isinstance(path, bytes) else "\0") in path:
        raise FileError("the path of %s %r contains a NUL byte: give a valid path" % (what, path))
    return path


def read_bytes(path, what="file", limit=1024 * 1024):
    """Content of ``path`` or None when it does not exist; FileError on anything else odd."""
    check_path(path, what)
    if os.path.isdir(path):
        raise FileError("%s %s is a directory, not a file: give the path of a file" % (what, path))
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except IOError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise FileError("cannot read %s %s: %s" % (what, path, exc.strerror or exc))
    if len(data) > limit:
        raise FileError("%s %s is larger than %d bytes: it is not what it should be" % (what, path, limit))
    return data


def check_parent_dir(path, what="file"):
    check_path(path, what)
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(parent):
        if os.path.exists(parent):
            raise FileError("%s is not a directory, so %s %s cannot be there: give a path in a directory"
                            % (parent, what, path))
        raise FileError("the directory %s for %s %s does not exist: create it first" % (parent, what, path))
    if os.path.isdir(path):
        raise FileError("%s %s is a directory, not a file: give the path of a file" % (what, path))
    return parent


def write_atomic(path, data, mode=0o600, what="file", uid=None, gid=None):
    """Write ``data`` (bytes) to ``path`` atomically; the new file has ``mode`` from the start.

    ``uid`` and ``gid`` (numeric ids, None = the writing process's) set the owner and group
    of the temporary file before any data is written, so readers in that group can read the
    file from the moment it appears under ``path``.
    """
    parent = check_parent_dir(path, what)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=parent)
    except (IOError, OSError) as exc:
        raise FileError("cannot write %s %s: %s; the previous file, if any, is unchanged"
                        % (what, path, getattr(exc, "strerror", None) or exc))
    try:
        try:
            if uid is not None or gid is not None:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if not isinstance(exc, (IOError, OSError)):
            raise
        raise FileError("cannot write %s %s: %s; the previous file, if any, is unchanged"
                        % (what, path, getattr(exc, "strerror", None) or exc))
    _fsync_dir(parent)


def _fsync_dir(parent):
    try:
        fd = os.open(parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove(path, what="file"):
    """Remove ``path``; True when something was removed."""
    check_path(path, what)
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise FileError("cannot remove %s %s: %s" % (what, path, exc.strerror or exc))
    return True


#: Errors of a lock file in a directory that this process cannot write to (read-only mount, no permission).
_READ_ONLY_ERRORS = (errno.EROFS, errno.EACCES, errno.EPERM)

#: Age in seconds after which a temporary file of write_atomic() is a leftover of a killed writer.
STALE_TEMP_SECONDS = 60


def temp_file_pattern(path):
    """Regular expression of the names write_atomic() gives its temporary files for ``path``."""
    return re.compile(r"^\.%s\.[A-Za-z0-9_]+\.tmp$" % re.escape(os.path.basename(path)))


def remove_stale_temp_files(path, older_than=STALE_TEMP_SECONDS, now=None):
    """Remove temporary files that a writer of ``path`` left when it was killed mid-write.

    Only regular files named like write_atomic()'s temporary files for ``path`` and not
    modified for ``older_than`` seconds are removed (a live writer renames its file within
    moments). They hold partial content (of a private key, for a key file), are created with
    mode 0600 and never carry the name of the target, so they are never read as the target;
    removing them keeps secrets from piling up. Returns the removed paths; errors are ignored.
    """
    parent = os.path.dirname(os.path.abspath(path)) or "."
    pattern = temp_file_pattern(path)
    limit = (time.time() if now is None else now) - older_than
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in sorted(names):
        if not pattern.match(name):
            continue
        candidate = os.path.join(parent, name)
        try:
            status = os.lstat(candidate)
            if stat.S_ISREG(status.st_mode) and status.st_mtime <= limit:
                os.unlink(candidate)
                removed.append(candidate)
        except OSError:
            continue
    return removed


def _open_lock(lock_path, parent):
    """A descriptor of the lock file, or None when the directory cannot be written by this process."""
    try:
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        if not (exc.errno in _READ_ONLY_ERRORS and not os.access(parent, os.W_OK)):
            raise FileError("cannot create lock file %s: %s" % (lock_path, exc.strerror or exc))
    try:
        return os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive advisory lock tied to ``path`` (a ``.lock`` file beside it).

    Two runs against the same key or token path are serialized, so they never both generate
    a key. The lock file stays; it holds no data. Once the lock is held, temporary files that
    a killed writer of ``path`` left behind are removed (see remove_stale_temp_files()).

    In a directory that this process cannot write to (a read-only mount, or a directory of
    another user), an existing lock file is locked through a read-only descriptor, and
    without one the block runs unlocked: this process cannot write there anyway, so a run
    that only needs to read (the key is already as requested) succeeds, and a run that would
    have to write fails with the write's own clear error.
    """
    if fcntl is None:
        yield
        return
    parent = check_parent_dir(path)
    lock_path = os.path.join(parent, ".%s.lock" % os.path.basename(path))
    fd = _open_lock(lock_path, parent)
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        remove_stale_temp_files(path)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
