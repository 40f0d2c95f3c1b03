"""cffi build script for tiered._native_pmemobj (the libpmemobj binding).

Why out-of-line ABI mode (``set_source(..., None)``) and not API mode: the
build emits a pure-Python module from native/pmem_cdefs.h and needs neither a
C compiler nor libpmemobj-dev, so ``pip install -e .`` succeeds on machines
without PMDK and the rest of tiered works there. The library is dlopen()ed
only when a PMem pool is asked for; if it is missing, that request fails with
an error naming the Debian package (tiered/tiers/pmemobj.py). Nothing per-row
runs through cffi from Python: the transactional row writer is a numba kernel
that calls pmemobj_tx_add_range_direct through the function pointer this
binding exposes, so API mode would buy no speed.

Run as a script (``python native/build_pmem.py``) to regenerate the module in
place without reinstalling.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = "tiered._native_pmemobj"


def _cdef() -> str:
    with open(os.path.join(HERE, "pmem_cdefs.h")) as f:
        return re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(MODULE, None)

if __name__ == "__main__":
    ffibuilder.emit_python_code(os.path.normpath(os.path.join(HERE, "..", *MODULE.split("."))) + ".py")
