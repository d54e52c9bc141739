#!/usr/bin/env python3
"""Compiles and runs every complete C++ example (a ```cpp block with a main)
in the given Markdown files against the built library, and compares what it
prints with what the document says it prints, so that the documents cannot
drift from the code.

An example's output is the ```text block that follows it, either at once or
after one line of prose ending in a colon ("It prints:"). Lines are compared
without trailing spaces. An example that prints something its document does
not show fails, as does one whose output differs.

usage: check-doc-examples.py <compiler command> <include dir> <libmp.so> <file.md>...
MP_EXAMPLE_CXXFLAGS adds compiler flags (the library's -fsanitize=...).
"""
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile

compiler_command, include, library = sys.argv[1:4]
compiler = shlex.split(compiler_command)  # "ccache c++" where meson found ccache
documents = sys.argv[4:]
failures = 0
checked = 0
with tempfile.TemporaryDirectory() as scratch:
    for document in documents:
        text = open(document).read()
        blocks = list(re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M))
        examples = [(block, blocks[i + 1] if i + 1 < len(blocks) else None)
                    for i, block in enumerate(blocks) if block.group(1) == "cpp"]
        for number, (block, following) in enumerate(examples):
            code = block.group(2)
            if "int main(" not in code:
                continue
            expected = None
            if following is not None and following.group(1) == "text":
                between = text[block.end():following.start()].strip()
                if not between or ("\n" not in between and between.endswith(":")):
                    expected = following.group(2)
            checked += 1
            name = f"{os.path.basename(document)} example {number + 1}"
            source = os.path.join(scratch, f"example{checked}.cpp")
            program = os.path.join(scratch, f"example{checked}")
            open(source, "w").write(code)
            build = subprocess.run(
                [*compiler, "-std=c++20", "-I", include, source, "-o", program, library,
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
            printed = [line.rstrip() for line in run.stdout.splitlines()]
            if expected is None:
                if printed:
                    print(f"FAIL: {name} prints output that the document does not show "
                          f"(add a ```text block after it):\n{run.stdout}")
                    failures += 1
                    continue
            elif printed != [line.rstrip() for line in expected.splitlines()]:
                diff = difflib.unified_diff(expected.splitlines(), printed, "document", "printed",
                                            lineterm="")
                print(f"FAIL: {name} prints something else than its document says:")
                print("\n".join(diff))
                failures += 1
                continue
            print(f"ok: {name}" + ("" if expected is None else " (output as documented)"))
print(f"{checked - failures} passed, {failures} failed")
sys.exit(1 if failures or not checked else 0)
