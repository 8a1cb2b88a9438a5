# -*- coding: utf-8 -*-
# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Safe file handling for the collection's modules and the token refresher.

PRIVATE to the collection: do not import it from other collections.

Like ``_jose`` (whose error root it uses), this file uses the standard library only, so that code outside Ansible (the
token refresher) writes files exactly as the modules do: into a temporary file in the target
directory created with mode 0600, flushed and fsync'ed, then renamed over the target, so a
reader sees the old file or the new one and never a partial file, and a secret is never
readable by others, not even for a moment.

Every file of a key or token directory may have been put there by a less privileged account
(the key's owner, or anyone when the directory is shared), so the primitives here follow no
symbolic link at the final component of a path: reads and locks open with ``O_NOFOLLOW`` and
check with ``fstat`` that they got a regular file (:func:`open_nofollow`, :func:`read_file`),
writes rename a new file over the name (:func:`write_atomic`), removals unlink a single name
relative to a descriptor of its directory and refuse ``..`` (:func:`remove`), backups are
written from bytes already read that way (:func:`write_backup`), and :func:`check_owner` and
:func:`check_private_dir` refuse files and directories of other accounts.
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

try:
    import grp
    import pwd
except ImportError:  # pragma: no cover - not on POSIX
    grp = pwd = None

from ansible_collections.selfjwt.kyma.plugins.module_utils._jose import CollectionError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Opening a FIFO planted at a path must not block the run.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOCTTY = getattr(os, "O_NOCTTY", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
#: errno values of open(O_NOFOLLOW) on a symbolic link (Linux: ELOOP; some BSDs: EMLINK, EFTYPE).
_SYMLINK_ERRORS = tuple(code for code in (getattr(errno, "ELOOP", None), getattr(errno, "EMLINK", None),
                                          getattr(errno, "EFTYPE", None)) if code is not None)


class FileError(CollectionError):
    """A file could not be read or written; the message says which and why."""


def check_path(path, what="file"):
    """Refuse a path that no file can have (the os functions raise ValueError for those), and key text.

    A PEM private key given where a path belongs must not become a file name (directory
    listings would show it), whatever directories its base64 text happens to name.
    """
    if (b"\0" if isinstance(path, bytes) else "\0") in path:
        raise FileError("the path of %s %r contains a NUL byte: give a valid path" % (what, path))
    if (b"PRIVATE KEY-----" if isinstance(path, bytes) else "PRIVATE KEY-----") in path:
        raise FileError("the path of %s holds a PEM private key, not a path: give the path of a file (key content "
                        "goes into an option of its own, such as private_key_content)" % what)
    return path


def resolve_uid(owner):
    """Numeric uid of a user name or id (None stays None)."""
    return _resolve(owner, pwd.getpwnam if pwd else None, "pw_uid", "user")


def resolve_gid(group):
    """Numeric gid of a group name or id (None stays None)."""
    return _resolve(group, grp.getgrnam if grp else None, "gr_gid", "group")


#: Numeric user and group ids the system calls take (-1, 2**32 - 1, means "unchanged" to chown).
_MAX_ID = 2 ** 32 - 2
_DECIMAL = re.compile(r"^[0-9]+\Z")


def _resolve(value, lookup, field, what):
    if value is None:
        return value
    text = str(value)
    if (isinstance(value, int) and not isinstance(value, bool)) or _DECIMAL.match(text):
        number = int(text)
        if not 0 <= number <= _MAX_ID:
            raise FileError("%s id %s is out of range: give a %s name or an id from 0 to %d"
                            % (what, text, what, _MAX_ID))
        return number
    if lookup is None:
        raise FileError("cannot look up %s %s on this platform: give a numeric id" % (what, text))
    try:
        return getattr(lookup(text), field)
    except (KeyError, ValueError):  # ValueError: a NUL character, which no name holds
        raise FileError("%s %s does not exist on this host: create it or give another %s" % (what, text, what))


# --------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------

_MODE_OPERATOR = re.compile(r"[+=-]")
_MODE_USERS = re.compile(r"^[ugo]+$")
_MODE_PERMS = re.compile(r"^[rwxXstugo]*$")
#: How far the permission bits of each class are shifted, and what "=" replaces for it.
_CLASS_SHIFT = {"u": 6, "g": 3, "o": 0}
_CLASS_BITS = {"u": stat.S_IRWXU | stat.S_ISUID, "g": stat.S_IRWXG | stat.S_ISGID, "o": stat.S_IRWXO | stat.S_ISVTX}
_SPECIAL_BITS = {("u", "s"): stat.S_ISUID, ("g", "s"): stat.S_ISGID, ("o", "t"): stat.S_ISVTX}
_RWX = {"r": 4, "w": 2, "x": 1}


def _octal_mode(mode):
    """The number of an int (not a bool) or a text of octal digits, else None."""
    if isinstance(mode, int) and not isinstance(mode, bool):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        return None


def creation_mode(mode, default):
    """The mode a new file gets before its first byte: ``mode`` when it is numeric, else ``default``.

    A symbolic ``mode`` (u=rw,g=r) is applied to the written file afterwards, by Ansible's file
    attributes; :func:`file_mode` checks it before anything is written.
    """
    number = None if mode is None else _octal_mode(mode)
    return default if number is None else number & 0o7777


def file_mode(mode, current):
    """The numeric mode that ``mode`` (a module's ``mode`` option, not None) gives a file of ``current``.

    ``current`` is an ``st_mode`` (the file's, or that of the file about to be made). An int is
    taken as it is, a text of octal digits as octal, and a symbolic mode (``u=rw,g=r``, as
    chmod(1) and Ansible's file attributes take it) is applied to ``current``. Anything else is
    a FileError that says what a mode looks like.
    """
    if isinstance(mode, int):
        return mode
    number = _octal_mode(mode)
    if number is not None:
        return number
    try:
        return _symbolic_mode(current, str(mode))
    except ValueError as exc:
        raise FileError("mode %r is neither octal (such as '0640') nor symbolic (such as u=rw,g=r): %s" % (mode, exc))


def _symbolic_mode(current, text):
    """``current`` (an st_mode) changed by a symbolic mode, clause by clause, as Ansible applies one."""
    mode = stat.S_IMODE(current)
    for clause in text.split(","):
        perm_lists = _MODE_OPERATOR.split(clause)
        operators = _MODE_OPERATOR.findall(clause)
        users = perm_lists.pop(0)
        use_umask = users == ""
        if users in ("a", ""):
            users = "ugo"
        if not _MODE_USERS.match(users):
            raise ValueError("bad symbolic permission for mode: %s" % clause)
        for operator, perms in zip(operators, perm_lists):
            if not _MODE_PERMS.match(perms):
                raise ValueError("bad symbolic permission for mode: %s" % clause)
            for user in users:
                bits = _permission_bits(mode, stat.S_ISDIR(current), user, perms, use_umask)
                if operator == "=":
                    mode = (mode & (_CLASS_BITS[user] ^ 0o7777)) | bits
                elif operator == "+":
                    mode |= bits
                else:
                    mode -= mode & bits
    return mode


def _permission_bits(mode, is_directory, user, perms, use_umask):
    """The bits that ``perms`` (such as ``rwX`` or ``g``) stand for in class ``user`` of ``mode``."""
    shift = _CLASS_SHIFT[user]
    allowed = 0o7777
    if use_umask:
        # No class given ("=rw"): as "a", but the bits set in the umask stay as they are.
        umask = os.umask(0)
        os.umask(umask)
        allowed = umask ^ 0o7777
    bits = 0
    for perm in perms:
        if perm in _RWX:
            bits |= allowed & (_RWX[perm] << shift)
        elif perm == "X":
            bits |= (1 << shift) if is_directory or mode & 0o111 else 0
        elif perm in "st":
            bits |= _SPECIAL_BITS.get((user, perm), 0)
        else:
            # u, g or o: the bits that class has now.
            bits |= ((mode >> _CLASS_SHIFT[perm]) & 7) << shift
    return bits


def replacement_owner(uid, gid, current):
    """(uid, gid) for a file written over one whose ``os.stat`` result is ``current`` (None: no file).

    The requested ids; where one is None and this process runs as root, the old file's, so a
    service account that reads the file does not lose access to it when root replaces it.
    """
    if current is not None and hasattr(os, "geteuid") and os.geteuid() == 0:
        uid = current.st_uid if uid is None else uid
        gid = current.st_gid if gid is None else gid
    return uid, gid


def account_name(uid):
    """``name (uid N)`` of a numeric user id, or ``uid N`` when it has no name."""
    if pwd is not None:
        try:
            return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
        except KeyError:
            pass
    return "uid %d" % uid


def trusted_owners(*uids):
    """The accounts whose files a run may use: root, the running account and ``uids`` (None ignored)."""
    owners = set([0])
    if hasattr(os, "geteuid"):
        owners.add(os.geteuid())
    owners.update(uid for uid in uids if uid is not None)
    return frozenset(owners)


def _names(owners):
    return ", ".join(account_name(uid) for uid in sorted(owners))


def check_owner(status, owners, path, what="file"):
    """Refuse a file (``status`` of it) that belongs to none of ``owners`` (None: no check)."""
    if owners is None or status.st_uid in owners:
        return
    raise FileError("%s %s belongs to %s, not to %s: another account may have put it there, so it is not used. "
                    "Check where it comes from; then remove it, or give it to the right account (chown), or set "
                    "owner to the account it belongs to" % (what, path, account_name(status.st_uid), _names(owners)))


def _symlink_error(path, what):
    return FileError("%s %s is a symbolic link, and links are not followed at key, certificate, state, lock and "
                     "token paths (another account could point them anywhere): replace the link with the file "
                     "itself, or remove it" % (what, path))


def open_nofollow(path, what="file", flags=os.O_RDONLY, mode=0o600):
    """``(fd, stat result)`` of the regular file ``path``, or ``(None, None)`` when it does not exist.

    A symbolic link at ``path`` is refused (O_NOFOLLOW), and so is anything but a regular file
    (directory, FIFO, device, socket); a FIFO does not block the open (O_NONBLOCK).
    """
    check_path(path, what)
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK | _NOCTTY, mode)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        if exc.errno in _SYMLINK_ERRORS and os.path.islink(path):
            raise _symlink_error(path, what)
        if exc.errno == errno.EISDIR:
            raise FileError("%s %s is a directory, not a file: give the path of a file" % (what, path))
        raise FileError("cannot read %s %s: %s" % (what, path, exc.strerror or exc))
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            raise FileError("%s %s is a directory, not a file: give the path of a file" % (what, path))
        if not stat.S_ISREG(status.st_mode):
            raise FileError("%s %s is not a regular file (a FIFO, device or socket): remove it, or give the path "
                            "of a file" % (what, path))
    except BaseException:
        os.close(fd)
        raise
    return fd, status


def absent(path):
    """True when nothing is at ``path``, not even a link: :func:`read_file` would return ``(None, None)``.

    Only ENOENT counts (as in :func:`open_nofollow`). A file, a link, a path that cannot be
    inspected or a path no file can have is not absent: the caller reads it and gets its error.
    """
    try:
        os.lstat(path)
    except OSError as exc:
        return exc.errno == errno.ENOENT
    except ValueError:
        return False
    return False


def read_file(path, what="file", limit=1024 * 1024, owners=None):
    """``(content, stat result)`` of the regular file ``path``, ``(None, None)`` when it does not exist.

    No symbolic link is followed (see :func:`open_nofollow`); with ``owners`` (a set of uids,
    see :func:`trusted_owners`) a file of another account is refused (:func:`check_owner`).
    """
    fd, status = open_nofollow(path, what)
    if fd is None:
        return None, None
    try:
        check_owner(status, owners, path, what)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (IOError, OSError) as exc:
        raise FileError("cannot read %s %s: %s" % (what, path, getattr(exc, "strerror", None) or exc))
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise FileError("%s %s is larger than %d bytes: it is not what it should be" % (what, path, limit))
    return data, status


def read_secret(path, what, limit=4096, owners=None, chmod_hint="", fill_hint=""):
    """The one line of text in a secret file (passphrase, PIN) that only its owner may read.

    No symbolic link is followed and, with ``owners``, a file of another account is refused
    (see :func:`read_file`). FileError when the file is missing, empty, or readable by its
    group or others (``chmod_hint`` is added to that message, ``fill_hint`` to the other two).
    """
    data, status = read_file(path, what=what, limit=limit, owners=owners)
    if data is None:
        raise FileError("the %s %s does not exist%s" % (what, path, fill_hint))
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise FileError("the %s %s has mode %04o, so others may read it; refusing to use it: run 'chmod 600 %s'%s"
                        % (what, path, mode, path, chmod_hint))
    text = data.decode("utf-8", "replace").rstrip("\r\n")
    if not text:
        raise FileError("the %s %s is empty%s" % (what, path, fill_hint))
    return text, status


def read_bytes(path, what="file", limit=1024 * 1024, owners=None):
    """Content of ``path`` or None when it does not exist; FileError on anything else odd (see :func:`read_file`)."""
    return read_file(path, what, limit, owners)[0]


def check_private_dir(path, owners, what="file"):
    """Refuse to keep ``what`` at ``path`` when an account outside ``owners`` can change its directory.

    The directory must belong to one of ``owners`` (see :func:`trusted_owners`) and must not be
    writable by its group or by others, sticky bit or not: in a shared directory another
    account can put a key, a link or a lock file under the name before the run does, and a
    private key has no business there. Returns the directory.
    """
    check_path(path, what)
    directory = os.path.dirname(os.path.abspath(path)) or "."
    try:
        status = os.stat(directory)
    except OSError as exc:
        raise FileError("cannot inspect the directory %s of %s %s: %s" % (directory, what, path, exc.strerror or exc))
    if status.st_uid not in owners:
        raise FileError("the directory %s of %s %s belongs to %s, not to %s: that account can put files and links "
                        "there. Keep the file in a directory of its own that root (or the running account) owns, such "
                        "as /etc/selfjwt" % (directory, what, path, account_name(status.st_uid), _names(owners)))
    if status.st_mode & 0o022:
        raise FileError("the directory %s of %s %s can be written by its group or by others (mode %04o), so other "
                        "accounts can put files and links there: remove their write permission (chmod go-w %s) or "
                        "keep the file in a directory of its own, such as /etc/selfjwt"
                        % (directory, what, path, stat.S_IMODE(status.st_mode), directory))
    return directory


def check_parent_dir(path, what="file", create_hint=""):
    """The existing directory of ``path``; FileError when it is missing or not a directory.

    ``create_hint`` follows "create it first" in the message for a missing directory, for a
    module that can create it itself (", or set parent_mode ...").
    """
    check_path(path, what)
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(parent):
        if os.path.exists(parent):
            raise FileError("%s is not a directory, so %s %s cannot be there: give a path in a directory"
                            % (parent, what, path))
        raise FileError("the directory %s for %s %s does not exist: create it first%s"
                        % (parent, what, path, create_hint))
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
    """Remove the file ``path``; True when something was removed.

    The last name of ``path`` is unlinked relative to a descriptor of its directory (a link is
    removed, never followed); a path with a ``..`` component is refused, so a name read from a
    file (a kid) can never reach outside the directory it was meant for.
    """
    check_path(path, what)
    if os.pardir in path.split(os.sep):
        raise FileError("the path of %s %r contains '..': nothing was removed. Give the path without '..' (a "
                        "file is removed by its own name in its directory, so that a name read from a file cannot "
                        "reach another directory)" % (what, path))
    directory, name = os.path.split(os.path.abspath(path))
    try:
        dir_fd = os.open(directory or os.sep, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise FileError("cannot remove %s %s: %s" % (what, path, exc.strerror or exc))
    try:
        try:
            status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        if stat.S_ISDIR(status.st_mode):
            raise FileError("%s %s is a directory, not a file: nothing was removed; remove it yourself if it "
                            "should go" % (what, path))
        os.unlink(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise FileError("cannot remove %s %s: %s" % (what, path, exc.strerror or exc))
    finally:
        os.close(dir_fd)
    return True


def backup_name(path):
    """The name of a backup copy of ``path``, as AnsibleModule.backup_local() names it."""
    return "%s.%s.%s" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~"))


def write_backup(path, data, mode, what="file", uid=None, gid=None):
    """Write ``data`` (the content of ``path``, read with :func:`read_file`) to a backup beside it.

    The copy is made from bytes already read without following links, never by opening
    ``path`` again, and is written like every file here (:func:`write_atomic`, ``mode`` from
    the first byte). Returns the path of the copy.
    """
    copy = backup_name(path)
    try:
        write_atomic(copy, data, mode, "backup of the %s" % what, uid=uid, gid=gid)
    except FileError as exc:
        raise FileError("cannot make a backup of %s %s (%s); nothing was changed" % (what, path, exc))
    return copy


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


def _lock_error(lock_path, reason):
    return FileError("lock file %s %s: another account may have put it there; remove it (the next run makes a new "
                     "one)" % (lock_path, reason))


def _check_lock(fd, lock_path, parent):
    """Refuse a lock file that is not an ordinary, single-named file of a trusted account."""
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        raise _lock_error(lock_path, "is not a regular file")
    if status.st_nlink != 1:
        raise _lock_error(lock_path, "has %d names (hard links)" % status.st_nlink)
    owners = trusted_owners(os.stat(parent).st_uid)
    if status.st_uid not in owners:
        raise _lock_error(lock_path, "belongs to %s, not to %s" % (account_name(status.st_uid), _names(owners)))


def _open_lock(lock_path, parent):
    """A descriptor of the lock file, or None when the directory cannot be written by this process.

    Opened with O_NOFOLLOW (a link planted at the lock's name is refused, never followed and
    never created at its target) and checked with fstat: a regular file with one name, owned
    by root, the running account or the owner of the directory.
    """
    flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | _NONBLOCK | _NOCTTY
    fd = None
    try:
        fd = os.open(lock_path, flags, 0o600)
    except OSError as exc:
        if exc.errno in _SYMLINK_ERRORS and os.path.islink(lock_path):
            raise _symlink_error(lock_path, "lock file")
        if not (exc.errno in _READ_ONLY_ERRORS and not os.access(parent, os.W_OK)):
            raise FileError("cannot create lock file %s: %s" % (lock_path, exc.strerror or exc))
    if fd is None:
        try:
            fd = os.open(lock_path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK | _NOCTTY)
        except OSError as exc:
            if exc.errno in _SYMLINK_ERRORS and os.path.islink(lock_path):
                raise _symlink_error(lock_path, "lock file")
            return None
    try:
        _check_lock(fd, lock_path, parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def locked_unless(unlocked, path):
    """:func:`locked` on ``path``, or no lock at all when ``unlocked`` is true (check mode, read-only runs)."""
    if unlocked:
        yield
        return
    with locked(path):
        yield


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive advisory lock tied to ``path`` (a ``.lock`` file beside it).

    Two runs against the same key or token path are serialized, so they never both generate
    a key. The lock file stays; it holds no data. It lives in the directory of ``path``: in a
    key directory of root's (as edge_keys makes it) only root can create it; where another
    account can write the directory, a link, FIFO, hard link or foreign file planted under its
    name is refused (see _open_lock()), so the worst such an account can do is hold the lock. Once the lock is held, temporary files that
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
