# Set-up and entry points. `make demo` and `make test` work on a fresh Debian machine:
# they install the system libraries (as root), create .venv, and install tiered into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# liburing-dev: io_uring in the SSD reader; libpmemobj-dev + pmdk-tools: the PMem tier; fio: the disk floor.
SYSPKGS := liburing-dev libpmemobj-dev pmdk-tools fio

.PHONY: install sysdeps demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py setup.cfg pyproject.toml $(wildcard native/*.c native/*.h native/*.py)
	@$(MAKE) --no-print-directory sysdeps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

sysdeps:
	@missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing system packages:$$missing (apt-get install them as root)"; fi; fi

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info tiered/_native_*.so demo-out
