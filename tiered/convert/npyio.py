"""Reading .npy files and .npz members block by block, never whole.

Plain .npy files and uncompressed .npz members are read with positioned
reads at computed offsets (like a memmap, but without letting the mapped pages
grow the resident set); compressed .npz members are decompressed as forward
streams. Either way memory is one block.
"""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
from numpy.lib import format as npformat

from .options import ConvertError


def _read_header(f: BinaryIO, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            return npformat.read_array_header_1_0(f)
        if version == (2, 0):
            return npformat.read_array_header_2_0(f)
    except (ValueError, OSError, EOFError) as e:
        raise ConvertError(f"{name}: not a valid .npy array ({e})") from e
    raise ConvertError(f"{name}: .npy format version {version} is not supported (1.0, 2.0 are)")


class NpyArray:
    """An array in a .npy file or an .npz member, described by its header, read in blocks.

    `name` is how errors refer to it: the file, plus [key] for an .npz member.
    """

    def __init__(self, path: str | Path, key: str | None = None):
        self.path = Path(path)
        self.key = key
        self.name = f"{self.path}[{key}]" if key else str(self.path)
        self._zip_member: str | None = None
        if key is None:
            try:
                with open(self.path, "rb") as f:
                    self.shape, self.fortran, self.dtype = _read_header(f, self.name)
                    self._offset = f.tell()
            except OSError as e:
                raise ConvertError(f"{self.path}: cannot open ({e.strerror or e})") from e
        else:
            self._open_member(key)
        if self.dtype.hasobject:
            raise ConvertError(f"{self.name}: object arrays are not supported")
        self.itemsize = self.dtype.itemsize

    def _open_member(self, key: str) -> None:
        try:
            zf = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as e:
            raise ConvertError(f"{self.path}: not a readable .npz archive ({e})") from e
        with zf:
            member = key if key in zf.namelist() else f"{key}.npy"
            if member not in zf.namelist():
                raise ConvertError(f"{self.path}: no array {key!r} (has "
                                   f"{sorted(n.removesuffix('.npy') for n in zf.namelist())})")
            info = zf.getinfo(member)
            with zf.open(member) as f:
                self.shape, self.fortran, self.dtype = _read_header(f, self.name)
                header_len = f.tell()
        self._zip_member = member
        self._offset = None
        if info.compress_type == zipfile.ZIP_STORED:
            with open(self.path, "rb") as f:         # local header: fixed 30 bytes + name + extra
                f.seek(info.header_offset)
                local = f.read(30)
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                self._offset = info.header_offset + 30 + name_len + extra_len + header_len
        else:
            self._header_len = header_len

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 1

    @staticmethod
    def keys(path: str | Path) -> list[str]:
        """Array names in an .npz archive."""
        try:
            with zipfile.ZipFile(path) as zf:
                return [n.removesuffix(".npy") for n in zf.namelist()]
        except (OSError, zipfile.BadZipFile) as e:
            raise ConvertError(f"{path}: not a readable .npz archive ({e})") from e

    def cursor(self) -> _Cursor:
        """A reader of byte ranges, efficient when ranges move forward."""
        if self._offset is not None:
            return _FileCursor(self.path, self._offset, self.name)
        return _ZipCursor(self.path, self._zip_member, self._header_len, self.name)

    def iter_flat(self, start: int, stop: int, block: int) -> Iterator[np.ndarray]:
        """Elements start..stop-1 of the array's storage order, `block` at a time."""
        cur = self.cursor()
        try:
            for s in range(start, stop, block):
                n = min(block, stop - s)
                yield np.frombuffer(cur.read_at(s * self.itemsize, n * self.itemsize),
                                    self.dtype)
        finally:
            cur.close()

    def iter_rows(self, block_rows: int) -> Iterator[np.ndarray]:
        """Consecutive row blocks (along axis 0) of a C-ordered array."""
        if self.fortran and self.ndim > 1:
            raise ConvertError(f"{self.name}: Fortran-ordered {self.ndim}-D arrays cannot be "
                               f"streamed by rows; save it with np.ascontiguousarray")
        row = int(np.prod(self.shape[1:], dtype=np.int64))
        for flat in self.iter_flat(0, len(self) * row, max(1, block_rows) * row):
            yield flat.reshape((-1,) + tuple(self.shape[1:]))

    def read(self) -> np.ndarray:
        """The whole array (for small arrays such as split indices)."""
        n = int(np.prod(self.shape, dtype=np.int64))
        cur = self.cursor()
        try:
            flat = np.frombuffer(cur.read_at(0, n * self.itemsize), self.dtype)
        finally:
            cur.close()
        return flat.reshape(self.shape, order="F" if self.fortran else "C")


class _Cursor:
    def read_at(self, offset: int, nbytes: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _FileCursor(_Cursor):
    def __init__(self, path: Path, base: int, name: str):
        self.f = open(path, "rb")
        self.base, self.name = base, name

    def read_at(self, offset: int, nbytes: int) -> bytes:
        self.f.seek(self.base + offset)
        data = self.f.read(nbytes)
        if len(data) != nbytes:
            raise ConvertError(f"{self.name}: file is truncated (wanted {nbytes} bytes at data "
                               f"offset {offset}, got {len(data)})")
        return data

    def close(self) -> None:
        self.f.close()


class _ZipCursor(_Cursor):
    def __init__(self, path: Path, member: str, header_len: int, name: str):
        self.zf = zipfile.ZipFile(path)
        self.f = self.zf.open(member)
        self.header_len, self.name = header_len, name

    def read_at(self, offset: int, nbytes: int) -> bytes:
        try:
            self.f.seek(self.header_len + offset)
            data = self.f.read(nbytes)
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise ConvertError(f"{self.name}: corrupt compressed data ({e})") from e
        if len(data) != nbytes:
            raise ConvertError(f"{self.name}: member is truncated (wanted {nbytes} bytes at "
                               f"data offset {offset}, got {len(data)})")
        return data

    def close(self) -> None:
        self.f.close()
        self.zf.close()
