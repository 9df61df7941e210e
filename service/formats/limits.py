"""What an upload may hold (rows, columns, decompressed size, compression ratio), checked by
every format's reader before the data are read whole.
"""

import math
from dataclasses import dataclass

from service.core import errors

# Below this decompressed size a file's compression ratio is not checked (see Limits.check_ratio).
RATIO_GRACE_BYTES = 8 << 20


@dataclass(frozen=True)
class Limits:
    """What an upload may hold, checked before its data is read whole. Only uploads are checked:
    a dataset once accepted stays readable for training if the limits are lowered later."""

    rows: int
    columns: int
    decompressed_bytes: int
    # How many times its own size a compressed file may expand to (DENDRITE_MAX_COMPRESSION_RATIO).
    compression_ratio: float = math.inf

    def too_many_rows(self, count: str, what: str = "rows") -> errors.InvalidInput:
        return errors.InvalidInput(
            f"the file has {count} {what}; at most {self.rows:,} are accepted (setting "
            "DENDRITE_MAX_ROWS): upload a sample of the rows",
            field="file",
        )

    def check_columns(self, count: int) -> None:
        if count > self.columns:
            raise errors.InvalidInput(
                f"the file has {count:,} columns; at most {self.columns:,} are accepted (setting "
                "DENDRITE_MAX_COLUMNS): each feature column becomes an input of the model",
                field="file",
            )

    def check_ratio(self, file_format: str, decompressed: int, stored: int) -> None:
        """Refuse a file that expands to more than `compression_ratio` times its size. Files that
        expand to at most RATIO_GRACE_BYTES are not checked: tiny ones can compress very well."""
        if decompressed <= RATIO_GRACE_BYTES or decompressed <= self.compression_ratio * stored:
            return
        raise errors.PayloadTooLarge(
            f"the {file_format} file expands from {stored:,} bytes to {decompressed:,} bytes "
            f"once decompressed, {decompressed / max(stored, 1):,.0f} times its size; at most "
            f"{self.compression_ratio:g} times is accepted (setting "
            "DENDRITE_MAX_COMPRESSION_RATIO): real data compresses far less, so this looks like "
            "a decompression bomb; if the data is genuine, upload it uncompressed (as CSV, or "
            "NPZ written with numpy.savez)",
            field="file",
        )

    def too_large(self, what: str, size: int) -> errors.PayloadTooLarge:
        return errors.PayloadTooLarge(
            f"{what} {size:,} bytes once decompressed; at most {self.decompressed_bytes:,} are "
            "accepted (setting DENDRITE_MAX_DECOMPRESSED_BYTES)",
            field="file",
        )
