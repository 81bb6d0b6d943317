# The two commands of the README. Both set up what is missing first (.ci/setup).
.PHONY: setup report test test-all bench

setup:
	@bash .ci/setup

report: setup
	.venv/bin/jaxnet report

test: setup
	.venv/bin/python -m pytest

# Everything, full-length training included (tens of minutes).
test-all: setup
	.venv/bin/python -m pytest -m "slow or not slow"
