"""Owner-only files: what dendrite keeps on disk (the SQLite database with its webhook secrets,
datasets, trained models, checkpoints, the embedded broker's messages) is readable by the user
that runs dendrite and by nobody else.

Every `dendrite` command sets the process umask to 0o077 as it starts (`restrict_umask`), so each
file and folder made by dendrite or by a library in its processes (SQLite, Keras, h5py, Celery)
is 0600 / 0700, and so is what its worker processes make. Code that creates files itself also
passes those modes, so they hold where a process did not start through the command line.
"""

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
_OTHERS = 0o077  # group and other permission bits

_warned: set[Path] = set()


def restrict_umask() -> int:
    """Mask group and other bits from every file and folder this process (and its children)
    creates; an operator's stricter umask stays. Returns the umask it had."""
    previous = os.umask(UMASK)
    os.umask(previous | UMASK)
    return previous


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Create `path` and its missing parents, each 0700. With `tighten`, an existing `path` that
    others may read is made 0700 (with a warning), where this user owns it."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
    if tighten:
        tighten_existing(path)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty and 0600 where it is missing, so that the library that then opens it
    (SQLite) keeps that mode; an existing `path` that others may read is made 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    os.close(fd)
    tighten_existing(path)
    return path


def tighten_existing(path: Path) -> None:
    """Take group and other bits off `path` where it exists, is this user's, and others may use
    it (a file or folder an older dendrite made); warn where it is not this user's to change."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if not mode & _OTHERS:
        return
    if info.st_uid != os.geteuid() or mode & stat.S_ISVTX:
        # Not dendrite's to change (another user's, or a shared folder such as /tmp).
        if path not in _warned:
            _warned.add(path)
            log.warning(
                "%s is open to other users (mode %03o) and is not this user's to change: "
                "give dendrite a folder of its own, or run: chmod go-rwx %s",
                path,
                mode,
                path,
            )
        return
    path.chmod(mode & ~_OTHERS)
    log.warning(
        "%s was open to other users (mode %03o); made it %03o: it holds dendrite's data",
        path,
        mode,
        mode & ~_OTHERS,
    )
