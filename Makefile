# The two commands of the README: `make demo` and `make test`. Each installs
# what is missing (Debian packages), configures meson, builds and runs.
BUILD ?= build
MESON_ARGS ?=
TEST_ARGS ?=

.PHONY: all deps configure build demo test bench stress fuzz clean

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@test -f $(BUILD)/build.ninja || meson setup $(BUILD) $(MESON_ARGS)

build: configure
	@meson compile -C $(BUILD)

demo: build
	@scripts/run-samples.sh $(BUILD)

test: build
	@status=0; meson test -C $(BUILD) --print-errorlogs $(TEST_ARGS) || status=$$?; \
	  python3 scripts/doctest-totals.py $(BUILD); exit $$status

clean:
	rm -rf $(BUILD)
