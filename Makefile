# `make demo` and `make test` do all set-up on a fresh machine themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= cpu,pdf,clip,dev,demo
# System packages the tests use: a real MQTT broker (and its clients, which docs/demo.md uses), a headless browser, PDF tools and fonts.
APT_PACKAGES ?= mosquitto mosquitto-clients chromium poppler-utils fonts-noto-cjk fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 gettext openssl

.PHONY: setup system-deps test demo lint clean

# The clone goes on sys.path too (inspector-clone.pth): the editable install's import hook comes after a folder named
# `model/` or `reports/` in the working directory (the demo's output has both), imported then as an empty namespace package.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	$(PY) -c 'import pathlib, site; pathlib.Path(site.getsitepackages()[0], "inspector-clone.pth").write_text("$(CURDIR)\n")'
	touch $@

setup: $(VENV)/.installed

system-deps:
	@missing=""; if command -v dpkg >/dev/null; then for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; fi; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "not root: not installing$$missing (apt packages); the tests needing them will skip"; fi

# Most tests wait on a broker, a process or a browser, so 4 workers halve the time even on 2 cores; a file's tests share
# one worker (its module fixtures are built once). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 4

test: setup system-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

demo: setup system-deps
	$(VENV)/bin/inspector demo

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
