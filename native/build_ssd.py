"""cffi build script for tiered._native_ssd (the O_DIRECT row reader).

io_uring support is compiled in when liburing's header is present
(Debian: liburing-dev); without it the reader uses its pthread pool.
"""
import os
import re
import shutil
import subprocess
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _cdef() -> str:
    text = open(os.path.join(HERE, "ssd_reader.h")).read()
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _have_liburing() -> bool:
    """True when a program including liburing.h links against -luring."""
    cc = os.environ.get("CC", "cc")
    if not shutil.which(cc.split()[0]):
        return False
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.c")
        with open(src, "w") as f:
            f.write("#include <liburing.h>\nint main(void){struct io_uring r; return io_uring_queue_init(1,&r,0)<0;}\n")
        res = subprocess.run([*cc.split(), src, "-o", os.path.join(d, "t"), "-luring"],
                             capture_output=True)
        return res.returncode == 0


ffibuilder = FFI()
ffibuilder.cdef(re.sub(r"/\*.*?\*/", "", _cdef(), flags=re.S))
_uring = _have_liburing() and os.environ.get("TIERED_NO_URING") != "1"
ffibuilder.set_source(
    "tiered._native_ssd",
    '#include "ssd_reader.h"',
    sources=[os.path.join(HERE, "ssd_reader.c")],
    include_dirs=[HERE],
    define_macros=[("TIERED_HAVE_URING", "1")] if _uring else [],
    libraries=(["uring"] if _uring else []) + ["pthread"],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
