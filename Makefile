# The two commands of the README. Both create the virtual environment on first use.
#   make demo   run the embedded ShapeBench demo on CPU, print its fair comparison with CFG and write its report to
#               outputs/shapebench_demo/
#   make test   run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m zeta_eval predict --config configs/shapebench_demo.yaml
	@awk '/^## Fair comparison/{on=1} on{print} on && /^- \*\*/{seen=1} on && seen && /^$$/{exit}' outputs/shapebench_demo/summary.md
	@echo "the report to browse: outputs/shapebench_demo/index.html (open it in a web browser; no server needed)"

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -n 2 --dist loadgroup --timeout 900 --durations 15 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache
