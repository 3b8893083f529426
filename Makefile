# Thin wrapper around CMake: make, make test, make demo, make bench,
# make install PREFIX=...  Variants: SAN=1 (ASan+UBSan), TSAN=1,
# UCONTEXT=1 (portable context switch), CC=clang.
BUILD ?= build
CMAKE_FLAGS ?=
PREFIX ?= /usr/local
JOBS ?= $(shell nproc)

ifeq ($(SAN),1)
override BUILD := $(BUILD)-san
CMAKE_FLAGS += -DCIO_SANITIZE=ON
endif
ifeq ($(TSAN),1)
override BUILD := $(BUILD)-tsan
CMAKE_FLAGS += -DCIO_TSAN=ON
endif
ifeq ($(UCONTEXT),1)
override BUILD := $(BUILD)-ucontext
CMAKE_FLAGS += -DCIO_UCONTEXT=ON
endif
ifneq ($(origin CC),default)
CMAKE_FLAGS += -DCMAKE_C_COMPILER=$(CC)
endif
GEN := $(shell command -v ninja >/dev/null 2>&1 && echo -G Ninja)

.PHONY: all test demo bench bench-report soak install clean valgrind fuzz
all: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(GEN) -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && $(CURDIR)/tests/servers.sh ctest --output-on-failure -j $(JOBS) -LE valgrind

valgrind: all
	cd $(BUILD) && $(CURDIR)/tests/servers.sh ctest --output-on-failure -j $(JOBS) -L valgrind

demo: all
	$(BUILD)/examples/demo

bench: all
	bench/run.sh $(BUILD)

# A bounded load test: 10,000 connections on the echo server for
# SOAK_SECONDS with resets and slow readers; fds and RSS must return to
# their baseline.
SOAK_SECONDS ?= 60
SOAK_CONNS ?= 10000
soak: all
	$(BUILD)/bench/soak/soak $(SOAK_SECONDS) $(SOAK_CONNS)

# Charts (gnuplot) and the results table in docs/benchmarks.md from the
# last `make bench`.
bench-report:
	bench/report.py $(BUILD) docs

# libFuzzer targets (clang); FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build build-* build-fuzz
