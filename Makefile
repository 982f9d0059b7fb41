# The front door. `make run` and `make test` work on a fresh Debian 12 machine: they install
# what is missing, configure, build and run.
PRESET ?= release
BUILD   = build/$(PRESET)
JOBS   ?= $(shell nproc)
STAMP   = build/.deps-installed

.PHONY: all deps build test run bench bench-peers bench-sse bench-soak bench-micro fmt lint sanitize clean tour

all: build

$(STAMP): scripts/install-deps.sh
	@scripts/install-deps.sh
	@mkdir -p build && touch $(STAMP)

deps: $(STAMP)

$(BUILD)/build.ninja: $(STAMP) CMakeLists.txt CMakePresets.json
	@cmake --preset $(PRESET) >/dev/null

build: $(BUILD)/build.ninja
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@ctest --preset $(PRESET) -j $(JOBS)

# The main job: a simulated LLM upstream, sluice in front of it, a burst of traffic and a
# report; then it keeps serving until Ctrl-C.
run: build
	@$(BUILD)/tools/sluice/sluice demo

# Every libsluice primitive once, with numbers.
tour: build
	@$(BUILD)/tools/sluice/sluice tour

# sluice beside nginx and Varnish on the same upstream and load (about 15 minutes; installs
# the peers with scripts/install-deps.sh --bench). See bench/README.md.
bench: build
	@scripts/install-deps.sh --bench
	@bench/run-peers.sh --build $(BUILD)
	@bench/run-sse.sh --build $(BUILD)
	@bench/run-stream-coalescing.sh --build $(BUILD)

# The streaming part alone: the broadcaster beside nginx + nchan, streamed pass-through beside
# nginx with proxy_buffering off, stream coalescing on and off; and the broadcaster soak
# (minutes, RSS over time).
bench-sse: build
	@scripts/install-deps.sh --bench
	@bench/run-sse.sh --build $(BUILD)
	@bench/run-stream-coalescing.sh --build $(BUILD)

bench-soak: build
	@bench/soak-broadcast.sh --build $(BUILD)

# Kept for muscle memory: the same as `make bench`.
bench-peers: bench

# The Google Benchmark binaries of the modules, each beside its baseline.
bench-micro: build
	@cmake --build $(BUILD) --target benchmarks -j $(JOBS)
	@bench/run-microbenchmarks.sh $(BUILD)

# The sanitizer presets, as CI runs them: make sanitize PRESET=asan
sanitize: $(STAMP)
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@ctest --preset $(PRESET) -j $(JOBS)

fmt:
	@git ls-files '*.h' '*.cc' | xargs clang-format -i

lint: $(BUILD)/build.ninja
	@git ls-files 'sluice/*.cc' | xargs clang-tidy -p $(BUILD) --quiet

clean:
	@rm -rf build
