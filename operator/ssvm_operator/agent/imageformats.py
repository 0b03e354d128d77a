"""What a downloaded image's own bytes say: whether it is the format it claims, and its virtual size."""
from __future__ import annotations

import os
import struct

EXTENSIONS = {"QCOW2": "qcow2", "RAW": "img", "VHD": "vhd", "OVA": "ova", "ISO": "iso"}


def _read(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset if offset >= 0 else max(0, os.fstat(fh.fileno()).st_size + offset))
        return fh.read(length)


def inspect(path: str, fmt: str) -> tuple[str | None, int | None]:
    """(problem, virtual size): a problem names the mismatch; the virtual size is None where the format has none."""
    size = os.path.getsize(path)
    if fmt == "QCOW2":
        head = _read(path, 0, 32)
        if len(head) < 32 or head[:4] != b"QFI\xfb":
            return "the file is not a QCOW2 image (no QFI\\xfb magic)", None
        return None, struct.unpack(">Q", head[24:32])[0]
    if fmt == "VHD":
        footer = _read(path, -512, 512)
        if len(footer) < 512 or footer[:8] != b"conectix":
            return "the file is not a VHD image (no conectix footer)", None
        return None, struct.unpack(">Q", footer[48:56])[0]
    if fmt == "ISO":
        if _read(path, 0x8001, 5) != b"CD001":
            return "the file is not an ISO 9660 image (no CD001 descriptor)", None
        return None, size
    if fmt == "OVA":
        if _read(path, 257, 5) != b"ustar":
            return "the file is not an OVA (a tar archive)", None
        return None, None
    return None, size   # RAW: the bytes are the disk
