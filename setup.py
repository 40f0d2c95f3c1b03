"""Build hook: setuptools reads setup.cfg; this file only adds the cffi native modules."""
from setuptools import setup

setup(cffi_modules=["native/build_ssd.py:ffibuilder", "native/build_pmem.py:ffibuilder"])
