# llmrt — the two commands: `make demo` and `make test`. Everything else is
# CMake under build/ (release, CUDA when nvcc is found) and build-asan/
# (ASan + UBSan over the unit tests, CPU only).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?=

.PHONY: all deps build test test-unit test-asan test-gpu demo clean fuzz install

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMRT_SANITIZE=ON -DLLMRT_CUDA=OFF

test-asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest -L "unit|cli" --output-on-failure -j $(JOBS)

# Every CPU test (unit, golden, CLI, tokenizer), then the unit and CLI tests again
# under the sanitizers (bad inputs included). GPU tests skip themselves where there is no GPU.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) --no-print-directory test-asan

# On a machine with a GPU: the same suites, GPU tests included.
test-gpu: build
	cd $(BUILD) && LLMRT_REQUIRE_GPU=1 ctest --output-on-failure -j $(JOBS)

fuzz: deps
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DLLMRT_FUZZ=ON -DLLMRT_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j $(JOBS)

# The llmrt program, libllmrt.so/.a, the headers and llmrt.pc under PREFIX.
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

demo: build
	@bash scripts/demo.sh $(BUILD)/llmrt

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
