# -*- coding: utf-8 -*-
# Copyright: contributors to gpuops.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded, non-blocking reads of host files (private to the collection's module_utils).

Every file a module reads from a host tree (sysfs attributes, /proc files, pci.ids,
modules.dep, configs) goes through ``read_bytes``/``read_text``: only regular files are
opened (a FIFO or a character device such as /dev/zero would block or never end), reads
stop at a limit, and failures come back as a short reason naming the file, never its content.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

import errno
import os
import stat

# sysfs attributes are at most one page; /proc text files we read are small.
SYSFS_LIMIT = 4096
PROC_LIMIT = 1024 * 1024
# pci.ids is about 1.5 MB today; modules.dep a few hundred KB.
DATA_LIMIT = 16 * 1024 * 1024
CONFIG_LIMIT = 1024 * 1024


class ReadError(Exception):
    """A file that cannot be read within the rules; ``reason`` names the file, not its content."""

    def __init__(self, path, reason):
        super(ReadError, self).__init__("%s: %s" % (path, reason))
        self.path = path
        self.reason = reason


def read_bytes(path, limit=SYSFS_LIMIT):
    """The file's bytes; raises ReadError (missing, not a regular file, over ``limit``)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ReadError(path, os.strerror(exc.errno) if exc.errno else str(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ReadError(path, "not a regular file")
        chunks = []
        size = 0
        while True:
            try:
                chunk = os.read(fd, min(65536, limit + 1 - size))
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    raise ReadError(path, "would block") from None
                raise ReadError(path, os.strerror(exc.errno) if exc.errno else str(exc)) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ReadError(path, "larger than %d bytes" % limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path, limit=SYSFS_LIMIT):
    """The file as UTF-8 text; raises ReadError, also when it is not UTF-8."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ReadError(path, "not UTF-8 text") from None


def try_read_text(path, limit=SYSFS_LIMIT):
    """(text, None) or (None, reason); a missing file gives (None, None)."""
    try:
        return read_text(path, limit), None
    except ReadError as exc:
        if not os.path.lexists(path):
            return None, None
        return None, str(exc)


def resolve_root(path):
    """Absolute, resolved host root; raises ValueError naming what is wrong (not the content)."""
    if not isinstance(path, str) or not path:
        raise ValueError("must be a non-empty absolute path")
    if "\x00" in path or "\n" in path:
        raise ValueError("must not contain NUL or newline characters")
    if not os.path.isabs(path):
        raise ValueError("must be an absolute path, got a relative one (%d characters)" % len(path))
    resolved = os.path.realpath(path)
    if not os.path.isdir(resolved):
        raise ValueError("%s is not a directory" % resolved)
    return resolved
