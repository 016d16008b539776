# Thin wrapper over CMake.  `make run` and `make test` install what is
# missing (apt-get), configure, build, then run.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build build-asan run test test-deps test-plain test-asan bench clean

all: build

deps:
	@./deploy/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLAWGATE_TESTS=ON >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCLAWGATE_SANITIZE=ON -DCLAWGATE_TESTS=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

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

test: test-plain test-asan

bench: build
	@./deploy/install-deps.sh --bench
	@$(BUILD)/bench/platform_bench
	@./bench/status_bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
