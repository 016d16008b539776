# Thin wrapper over CMake.  `make run` and `make test` install what is
# missing (apt-get), configure, build, then run.
BUILD         ?= build
ASAN_BUILD    ?= build-asan
RELEASE_BUILD ?= build-release
FUZZ_BUILD    ?= build-fuzz
JOBS          ?= $(shell nproc 2>/dev/null || echo 2)
# `make fuzz`: seconds per target; `make test`: seconds per target of its
# short pass (12 targets, one at a time).
FUZZ_SECONDS  ?= 600
FUZZ_SHORT    ?= 15
FUZZ_JOBS     ?= 1

.PHONY: all deps build build-asan build-release build-fuzz run test test-deps \
        test-plain test-asan test-release test-fuzz fuzz fuzz-regressions \
        bench clean format format-check

all: build

deps:
	@./deploy/install-deps.sh

# Our own builds treat warnings as errors (CLAWGATE_WERROR); a plain
# `cmake` does not, so a packager's flags always give a build.
build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLAWGATE_TESTS=ON \
	    -DCLAWGATE_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCLAWGATE_SANITIZE=ON \
	    -DCLAWGATE_TESTS=ON -DCLAWGATE_WERROR=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# Release (-O3) finds warnings the -O2 build does not; building it, tests
# included, is the test.
build-release: deps
	@cmake -S . -B $(RELEASE_BUILD) -DCMAKE_BUILD_TYPE=Release -DCLAWGATE_TESTS=ON \
	    -DCLAWGATE_WERROR=ON >/dev/null
	@cmake --build $(RELEASE_BUILD) -j$(JOBS)

# libFuzzer targets (tests/fuzz): clang, every library instrumented.
build-fuzz: deps
	@./deploy/install-deps.sh --test
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCLAWGATE_FUZZ=ON -DCLAWGATE_TESTS=OFF -DCLAWGATE_BENCH=OFF \
	    -DCLAWGATE_WERROR=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)

run: build
	@./deploy/run.sh $(BUILD)/gateway/clawgate

test-deps:
	@./deploy/install-deps.sh --test
	@cd tests/clients && npm install --no-audit --no-fund --silent

test-plain: build test-deps
	@echo "== tests (plain build)"
	@cd $(BUILD) && ctest --output-on-failure

test-asan: build-asan test-deps
	@echo "== tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
	@./tests/run-sanitized.sh $(ASAN_BUILD)

test-release: build-release
	@echo "== Release build (-O3 -Werror, tests included): built"

test-fuzz: build-fuzz
	@echo "== fuzz: every kept crashing input, then each target $(FUZZ_SHORT) s"
	@./tests/fuzz/run.sh --regressions $(FUZZ_BUILD)
	@FUZZ_JOBS=$(FUZZ_JOBS) ./tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SHORT)

# Formatting: Debian's clang-format with the tree's .clang-format.
format: deps
	@./deploy/install-deps.sh --test
	@./tests/format.sh

format-check: test-deps
	@echo "== formatting (clang-format, .clang-format)"
	@./tests/format.sh --check

test: format-check test-release test-plain test-asan test-fuzz

fuzz: build-fuzz
	@FUZZ_JOBS=$(FUZZ_JOBS) ./tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Replays tests/fuzz/regressions (also the first step of test-fuzz).
fuzz-regressions: build-fuzz
	@./tests/fuzz/run.sh --regressions $(FUZZ_BUILD)

bench: build
	@./deploy/install-deps.sh --bench
	@$(BUILD)/bench/platform_bench
	@./bench/status_bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(RELEASE_BUILD) $(FUZZ_BUILD)
