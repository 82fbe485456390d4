# Two commands do all set-up:  `make lab` (open the course)  and  `make test` (run every check).
# Both create .venv when missing and reinstall only when requirements.txt or pyproject.toml change.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   := data/FashionMNIST/raw/t10k-labels-idx1-ubyte
PYTEST_ARGS ?=
# make lab CPU_ONLY=1 (on a fresh clone): PyTorch's CPU-only wheels, about 2.5 GB less to download than PyPI's
# (which bundle the CUDA libraries). torch and torchvision come together from that index, in the versions
# requirements.txt allows, so they match.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_PINS := $(shell grep -E '^torch(vision)?[<>=]' requirements.txt | sed "s/.*/'&'/")

.PHONY: lab test unit notebooks solutions bench data site slides chromium clean-venv

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(CPU_ONLY),$(PY) -m pip install --quiet --index-url $(TORCH_CPU_INDEX) $(TORCH_PINS))
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Fashion-MNIST: the Debian package when apt-get is there and we are root, else torchvision's download.
$(DATA): | $(STAMP)
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Debian package dataset-fashion-mnist ..."; \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) || echo "apt-get could not install it; trying torchvision's download"; \
	fi
	COURSE_DATA=$(CURDIR)/data $(PY) -c "from course_utils import prepare_fashion_mnist as p; r, src = p(); print('Fashion-MNIST:', src)"

data: $(DATA)

# Debian's Chromium for the browser tests (tests/browser.py), installed when missing and we are root;
# without a Chromium those tests are skipped and say why.
chromium:
	@if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
	    && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Debian package chromium for the browser tests ..."; \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "apt-get could not install chromium"; \
	fi

# The course site in build/site/ (open build/site/index.html): notebooks as committed, never executed.
site: $(STAMP)
	$(PY) course_site/build_site.py

# Reveal.js slide decks of the notebooks in build/slides/ (open build/slides/index.html): the saved outputs, with
# the slide types chosen in each cell's metadata; nothing is executed and the decks load nothing from the network.
slides: $(STAMP)
	$(PY) slides/build_slides.py

# JupyterLab on the whole course (notebooks, walkthroughs, answers, solutions), opening START.md, the course map.
# .jupyter/lab/settings/overrides.json opens Markdown files rendered, so walkthroughs read like pages.
lab: $(STAMP) $(DATA)
	$(VENV)/bin/jupyter lab --LabApp.app_settings_dir=$(CURDIR)/.jupyter/lab/settings \
	  $(if $(NO_BROWSER),--no-browser) $(if $(filter 0,$(shell id -u)),--allow-root) START.md

unit: $(STAMP) $(DATA) chromium
	$(PY) -m pytest tests $(PYTEST_ARGS)

notebooks: $(STAMP) $(DATA)
	COURSE_QUICK=1 $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 notebooks $(PYTEST_ARGS)

# The worked exercises (solutions/NN_name.ipynb) in quick mode, as `make test` runs them.
solutions: $(STAMP) $(DATA)
	COURSE_QUICK=1 $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 solutions $(PYTEST_ARGS)

# Every check, on as many pytest workers (pytest-xdist) as there are cores, at most 4, each on one thread: the
# quick-mode notebooks' small convolutions gain little from a second thread, so two notebooks side by side finish
# sooner than one after the other (and threads that outnumber the cores stall each other). --dist loadfile keeps
# each notebook's cells, and each test file, on one worker in order. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= auto
test: $(STAMP) $(DATA) chromium
	COURSE_QUICK=1 OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --maxprocesses=4 --dist loadfile \
	  tests notebooks solutions --nbval-lax --nbval-current-env --nbval-cell-timeout=900 $(PYTEST_ARGS)

bench: $(STAMP) $(DATA)
	COURSE_PRECISION=fp32 $(PY) benchmarks/sample_speed.py --tag fp32
	$(PY) benchmarks/samplers.py --checkpoint checkpoints/ddpm_fashion16.pt
	$(PY) benchmarks/fid_spread.py --checkpoint checkpoints/ddpm_fashion16.pt
	$(PY) benchmarks/update_readme.py

clean-venv:
	rm -rf $(VENV)
