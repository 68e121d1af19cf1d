# The two commands of the README. Each installs what is missing (apt-get),
# configures, builds and runs.
#   make demo   - the samples on every available device, verified
#   make test   - the whole GoogleTest suite through ctest
#   make tsan   - core and stress tests under ThreadSanitizer (docs/concurrency.md)
#   make asan   - the whole suite under AddressSanitizer + UBSan (docs/concurrency.md)
#   make bench  - usm against hand-written programs and raw operations (docs/performance.md)
BUILD_DIR ?= build
PRESET    ?= release
JOBS      ?= $(shell nproc)

.PHONY: all demo test tsan asan bench build configure deps clean format

all: build

deps:
	@bash .ci/install-deps

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake --preset $(PRESET)

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	@echo "== usm demo: every sample on every device, checked against the CPU =="
	$(BUILD_DIR)/samples/hello
	$(BUILD_DIR)/samples/saxpy
	$(BUILD_DIR)/samples/heat2d
	$(BUILD_DIR)/samples/pipeline
	$(BUILD_DIR)/samples/oversubscribe
	$(BUILD_DIR)/samples/linked_list
	$(BUILD_DIR)/samples/tree
	@echo "== heat2d traced (USM_TRACE, docs/tracing.md), drawn by usm-report =="
	USM_TRACE=$(BUILD_DIR)/heat2d-trace.json $(BUILD_DIR)/samples/heat2d 256
	$(BUILD_DIR)/tools/usm-report $(BUILD_DIR)/heat2d-trace.json -o $(BUILD_DIR)/heat2d-trace.svg

# The device suites run twice: on the default (SIGSEGV) fault path, then on
# userfaultfd. Suites that pin the path themselves (paths/, model/) run once.
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 600
	@echo "== the device suites again, host faults through userfaultfd (USM_FAULT=uffd) =="
	USM_FAULT=uffd ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 600 \
	    -L 'vulkan|opencl' -E '^(paths|model)/|^package_consumer$$'

# ThreadSanitizer: builds only core_test, stress_test and device_fault_test (the tsan presets),
# in build-tsan, and runs them; the stress test then runs again with host
# faults through userfaultfd. Stress time per backend: USM_STRESS_SECONDS.
# GCC 12's ThreadSanitizer cannot map its shadow when the kernel randomizes
# mmap more than vm.mmap_rnd_bits=28; without ASLR it runs anywhere.
NO_ASLR = setarch $$(uname -m) -R
tsan: deps
	cmake --preset tsan
	cmake --build --preset tsan -j $(JOBS)
	$(NO_ASLR) ctest --preset tsan -j $(JOBS)
	@echo "== the stress test again under ThreadSanitizer, host faults through userfaultfd =="
	USM_FAULT=uffd $(NO_ASLR) ctest --preset tsan -j $(JOBS) -R '^backends/stress\.'

# AddressSanitizer and UndefinedBehaviorSanitizer: the asan presets build
# everything but the benchmarks in build-asan (Debug assertions at -O1) and
# run the whole suite once, both backends, on the default fault path (the
# suites that pin the path, paths/ and model/, run userfaultfd too; a second
# pass would double the time). Leaks the drivers keep until exit are suppressed in
# tests/lsan.supp, each with its reason.
asan: deps
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

# One process, medians of 5, JSON beside the table; exit status 1 on a wrong
# result. BENCH_FLAGS=--quick for CI-sized runs (docs/performance.md).
bench: build
	$(BUILD_DIR)/bench/usm-bench --json $(BUILD_DIR)/usm-bench.json $(BENCH_FLAGS)

format:
	clang-format -i $$(git ls-files '*.hpp' '*.cpp')

clean:
	rm -rf $(BUILD_DIR)
