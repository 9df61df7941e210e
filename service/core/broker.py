"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu creates the message file, then writes it; a consumer polling in between moves and reads an
empty file and crashes on the JSON. Writing to a temporary name and renaming closes that window.
"""

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from service.core.filemodes import FILE_MODE

SCHEME = "dendrite-fs"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        # The staging name does not end in ".msg", so consumers skip it until the rename.
        staging = os.path.join(self.data_folder_out, f"{uuid.uuid4()}.staging")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:  # the owner's alone, as kombu's `open` is not
            handle.write(str_to_bytes(dumps(payload)))
        os.replace(staging, os.path.join(self.data_folder_out, name))


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
