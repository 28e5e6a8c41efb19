# DeepDosimetry set-up and checks. Everything goes into a local virtual environment (.venv).
#
#   make demo     create .venv as below, then simulate a torso case, apply DL-PVC and IY-PVC, write demo-output/;
#                 then one virtual patient through VDK, Monte Carlo on SPECT and the dose-rate CNN (demo-output/dose),
#                 then one imaged at four time points, integrated into absorbed dose (demo-output/absorbed),
#                 then one through PlanarTo3D from its planar images (demo-output/planar)
#   make test     create .venv, install torch (CPU 2.13.0 by default) and the packages, run ruff and pytest
#
# CUDA users choose their torch build, e.g.:
#   make test TORCH_SPEC="torch==2.13.0" TORCH_INDEX_URL=<PyTorch's wheel index for your CUDA version>

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.deepdosimetry-installed

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check "$(TORCH_SPEC)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install --disable-pip-version-check -e ".[test,cluster]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deepdosimetry demo-pvc --out demo-output
	$(BIN)/deepdosimetry demo-dose --out demo-output/dose
	$(BIN)/deepdosimetry demo-absorbed --out demo-output/absorbed
	$(BIN)/deepdosimetry demo-planar --out demo-output/planar

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build demo-output *.egg-info .pytest_cache .ruff_cache
