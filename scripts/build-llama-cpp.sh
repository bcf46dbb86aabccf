#!/usr/bin/env bash
# The llama.cpp engine (inference/llama_engine.py): llama-cpp-python built once for this CPU and kept in a
# cache outside the checkout (keyed by the CPU's instruction flags), so every clone on the machine (CI's
# included) installs it in seconds. No registry ships wheels of it. Native code for this CPU (AVX-512, VNNI,
# BF16 where it has them) but without AMX: ggml's AMX matrix kernel (for quantised weights only) crashes
# batched prompt processing (llama.cpp issue 20824). Beside the wheel it keeps llama.cpp's converter
# (convert_hf_to_gguf.py, its conversion/ and gguf-py), copied into the virtual environment, which turns a
# prepared model folder into the float32 GGUF the engine runs. Without a compiler, offline, or if the build
# fails, it says so and the node runs on transformers, the reference engine.
set -uo pipefail
VERSION=0.3.36
PY=${PY:-.venv/bin/python}
cpu=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | md5sum | cut -c1-8)
CACHE=${EDGE_BUILD_CACHE:-${HOME:-/tmp}/.cache/edgeportal}/llama-cpp-python-$VERSION-$(uname -m)-$cpu
mkdir -p "$(dirname "$CACHE")"
exec 9>"$CACHE.lock"
flock 9 2>/dev/null || true  # two clones building at once: the second waits, then finds the first's build
if [ ! -d "$CACHE" ]; then
    if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
        echo "build-llama-cpp: no cmake or g++: the llama.cpp engine is not installed; the node runs on transformers" >&2
        exit 0
    fi
    echo "build-llama-cpp: building llama-cpp-python $VERSION for this CPU once (a few minutes), into $CACHE"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    if ! "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$work" \
        || ! tar xzf "$work"/llama_cpp_python-$VERSION.tar.gz -C "$work"; then
        echo "build-llama-cpp: could not fetch the sources; the node runs on transformers" >&2
        exit 0
    fi
    src="$work/llama_cpp_python-$VERSION"
    flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"  # after -march=native, these still hold
    if ! CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DCMAKE_C_FLAGS='$flags' -DCMAKE_CXX_FLAGS='$flags'" \
        CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$PY" -m pip wheel -q --no-deps "$src" -w "$work/wheel" >"$work/build.log" 2>&1
    then
        tail -n 20 "$work/build.log" >&2
        echo "build-llama-cpp: the build failed; the node runs on transformers" >&2
        exit 0
    fi
    mkdir -p "$work/cache"
    cp -r "$src/vendor/llama.cpp/convert_hf_to_gguf.py" "$src/vendor/llama.cpp/conversion" \
        "$src/vendor/llama.cpp/gguf-py" "$work"/wheel/llama_cpp_python-*.whl "$work/cache/"
    mv "$work/cache" "$CACHE"  # whole or not at all
fi
"$PY" -m pip install -q "$CACHE"/llama_cpp_python-*.whl
converter=$("$PY" -c 'import sys; print(sys.prefix)')/share/edgeportal-llama
rm -rf "$converter" && mkdir -p "$converter"
cp -r "$CACHE/convert_hf_to_gguf.py" "$CACHE/conversion" "$CACHE/gguf-py" "$converter/"
