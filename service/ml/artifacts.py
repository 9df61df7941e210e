"""Saving and loading `.keras` files.

Loading always uses Keras' `safe_mode`: no code runs from a file.
"""

from pathlib import Path

import keras

from service.core.filemodes import FILE_MODE


def save(model: keras.Model, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.keras")
    model.save(tmp)
    tmp.chmod(FILE_MODE)  # Keras makes it with the umask's mode; the owner's alone
    tmp.replace(path)
    return path.stat().st_size


def load(path: Path) -> keras.Model:
    return keras.saving.load_model(path, compile=False, safe_mode=True)
