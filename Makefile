# The two commands of the README. Each installs what is missing (apt-get),
# configures, builds and runs.
#   make demo   - the samples on every available device, verified
#   make test   - the whole GoogleTest suite through ctest
BUILD_DIR ?= build
PRESET    ?= release
JOBS      ?= $(shell nproc)

.PHONY: all demo test build configure deps clean format

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

# The device suites run twice: on the default (SIGSEGV) fault path, then on
# userfaultfd. Suites that pin the path themselves (paths/, model/) run once.
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 600
	@echo "== the device suites again, host faults through userfaultfd (USM_FAULT=uffd) =="
	USM_FAULT=uffd ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 600 \
	    -L 'vulkan|opencl' -E '^(paths|model)/|^package_consumer$$'

format:
	clang-format -i $$(git ls-files '*.hpp' '*.cpp')

clean:
	rm -rf $(BUILD_DIR)
