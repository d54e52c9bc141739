#!/usr/bin/env python3
"""Compiles and runs every complete C++ example (a ```cpp block with a main)
in the given Markdown files against the built library, so that the documents
cannot drift from the code.

usage: check-doc-examples.py <compiler> <include dir> <libmp.so> <file.md>...
MP_EXAMPLE_CXXFLAGS adds compiler flags (the library's -fsanitize=...).
"""
import os
import re
import subprocess
import sys
import tempfile

compiler, include, library = sys.argv[1:4]
documents = sys.argv[4:]
failures = 0
checked = 0
with tempfile.TemporaryDirectory() as scratch:
    for document in documents:
        blocks = re.findall(r"```cpp\n(.*?)```", open(document).read(), re.S)
        for number, code in enumerate(blocks):
            if "int main(" not in code:
                continue
            checked += 1
            name = f"{os.path.basename(document)} example {number + 1}"
            source = os.path.join(scratch, f"example{checked}.cpp")
            program = os.path.join(scratch, f"example{checked}")
            open(source, "w").write(code)
            build = subprocess.run(
                [compiler, "-std=c++20", "-I", include, source, "-o", program, library,
                 f"-Wl,-rpath,{os.path.dirname(library)}", "-pthread",
                 *os.environ.get("MP_EXAMPLE_CXXFLAGS", "").split()],
                capture_output=True, text=True)
            if build.returncode != 0:
                print(f"FAIL: {name} does not compile:\n{build.stderr[:3000]}")
                failures += 1
                continue
            try:
                run = subprocess.run([program], capture_output=True, text=True, timeout=120)
            except subprocess.TimeoutExpired:
                print(f"FAIL: {name} did not finish in 120 s")
                failures += 1
                continue
            if run.returncode != 0:
                print(f"FAIL: {name} exited with {run.returncode}:\n{run.stdout}{run.stderr}")
                failures += 1
                continue
            print(f"ok: {name}")
print(f"{checked - failures} passed, {failures} failed")
sys.exit(1 if failures or not checked else 0)
