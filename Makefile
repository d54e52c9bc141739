# The two commands of the README: `make demo` and `make test`. Each installs
# what is missing (Debian packages), configures meson, builds and runs.
BUILD ?= build
MESON_ARGS ?=
TEST_ARGS ?=
# Build only these targets (and test without rebuilding the rest); all if empty.
TARGETS ?=

# Debian packages a target needs beyond install-deps.sh's list, set per target
# below (a target's value reaches the deps it depends on): DEPS are required,
# DEPS_OPTIONAL are installed when possible (as root) and skipped otherwise.
DEPS ?=
DEPS_OPTIONAL ?=
# Open MPI, for mp::mpi (meson option mpi, auto: built when found).
MPI_DEPS = openmpi-bin libopenmpi-dev

.PHONY: all deps configure build demo demo-mpi test bench stress fuzz clean

all: build

deps:
	@scripts/install-deps.sh $(DEPS) --optional $(DEPS_OPTIONAL)

# A build directory configured before packages were installed (make demo,
# then make test) is reconfigured, so that meson finds what is new (MPI).
configure: deps
	@if [ ! -f $(BUILD)/build.ninja ]; then meson setup $(BUILD) $(MESON_ARGS); \
	 elif [ /var/lib/dpkg/status -nt $(BUILD)/build.ninja ]; then meson setup --reconfigure $(BUILD); fi

build: configure
	@meson compile -C $(BUILD) $(TARGETS)

# Builds only the library and the samples, then runs them.
demo: configure
	@meson compile -C $(BUILD) $$(scripts/run-samples.sh --targets)
	@scripts/run-samples.sh $(BUILD)

# The MPI sample on this host: a master and two worker ranks.
demo-mpi: DEPS += $(MPI_DEPS)
demo-mpi: configure
	@meson compile -C $(BUILD) samples/mpi_pool
	@scripts/mpirun.sh -n 3 $(BUILD)/samples/mpi_pool

# With Open MPI when it can be installed, so that the mpi suite runs (CI).
test: DEPS_OPTIONAL += $(MPI_DEPS)
test: build
	@status=0; meson test -C $(BUILD) --print-errorlogs $(if $(TARGETS),--no-rebuild) $(TEST_ARGS) || status=$$?; \
	  python3 scripts/doctest-totals.py $(BUILD); exit $$status

# mp beside its peers (Python, Boost, raw system calls), BENCH_ROUNDS rounds
# alternating; prints the ratios and writes docs/performance.md and .png. The
# plot uses Debian's matplotlib, hence /usr/bin/python3; the Python peers run
# under `python3` on PATH, but mpi4py.futures (the mp::mpi peer) under
# Debian's /usr/bin/python3, which has python3-mpi4py. BENCH_ARGS="--only
# process" runs one bench; "--only mpi --update" rewrites only its rows.
BENCH_ROUNDS ?= 5
BENCH_ARGS ?=
bench: DEPS += python3-matplotlib
bench: DEPS_OPTIONAL += $(MPI_DEPS) python3-mpi4py
bench: build
	@/usr/bin/python3 bench/run.py $(BUILD) --rounds $(BENCH_ROUNDS) $(BENCH_ARGS)

# The crash matrix: SIGKILLs at random points, STRESS_ITERATIONS rounds.
STRESS_ITERATIONS ?= 1000
stress: build
	@$(BUILD)/tests/stress/crash_matrix $(STRESS_ITERATIONS)

# libFuzzer targets, built with clang-14 and ASan+UBSan in their own build
# directory; FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz: deps
	@scripts/install-deps.sh clang-14 libclang-rt-14-dev
	@test -f build-fuzz/build.ninja || CXX=clang++-14 meson setup build-fuzz -Dfuzz=true \
	  -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=false
	@meson compile -C build-fuzz $$(sed -n "s/^ *'\(fuzz_[a-z_]*\)'.*/fuzz\/\1/p" fuzz/meson.build)
	@scripts/run-fuzzers.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)
