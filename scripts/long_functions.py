#!/usr/bin/env python3
"""Rust functions longer than a limit (default 120 lines, from `fn` to its closing brace).

Run from the repo root:  python3 scripts/long_functions.py [LIMIT] [DIR ...]
(default DIRs: src python/src). Prints `LINES FILE:LINE NAME`, longest first, and exits 1 when
any is listed that ALLOWED does not name. Braces are counted outside strings, chars and comments.
"""
import os
import re
import sys

# (file, function) pairs allowed to be long; each says why in a comment above it.
ALLOWED = {("src/pickle/vm.rs", "run")}

FN = re.compile(
    r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+"[^"]*"\s+)?fn\s+(\w+)'
)


def code_only(line, state):
    """`line` without comments, strings and char literals; `state` carries block comments and
    multi-line strings over to the next line."""
    out, i, n = [], 0, len(line)
    while i < n:
        if state["block"]:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out)
            state["block"], i = False, j + 2
            continue
        if state["str"]:
            if state["raw"] is not None:
                end = '"' + "#" * state["raw"]
                j = line.find(end, i)
                if j < 0:
                    return "".join(out)
                state["str"], state["raw"], i = False, None, j + len(end)
                continue
            while i < n:
                if line[i] == "\\":
                    i += 2
                    continue
                if line[i] == '"':
                    state["str"] = False
                    i += 1
                    break
                i += 1
            continue
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"], i = True, i + 2
            continue
        m = re.match(r'b?r(#*)"', line[i:])
        if m and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            state["str"], state["raw"], i = True, len(m.group(1)), i + m.end()
            continue
        if line[i] == '"':
            state["str"], state["raw"], i = True, None, i + 1
            continue
        if line[i] == "'":
            m = re.match(r"'(\\.[^']*|[^'\\])'", line[i:])
            if m:
                i += m.end()
                continue
        out.append(line[i])
        i += 1
    return "".join(out)


def function_lengths(path):
    """(lines, first line, name) of every function with a body in `path`."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    state = {"block": False, "str": False, "raw": None}
    code = [code_only(line, state) for line in lines]
    for i, line in enumerate(code):
        m = FN.match(line)
        if not m:
            continue
        depth, opened, end = 0, False, None
        for j in range(i, len(code)):
            for ch in code[j]:
                if ch == "{":
                    depth, opened = depth + 1, True
                elif ch == "}":
                    depth -= 1
                elif ch == ";" and not opened:
                    break  # a declaration without a body
                if opened and depth == 0:
                    end = j
                    break
            else:
                continue
            break
        if end is not None:
            yield end - i + 1, i + 1, m.group(7)


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    roots = sys.argv[2:] or ["src", "python/src"]
    rows = []
    for root in roots:
        for d, _, files in os.walk(root):
            for name in files:
                if name.endswith(".rs"):
                    path = os.path.join(d, name)
                    for n, line, fn in function_lengths(path):
                        if n > limit:
                            rows.append((n, path, line, fn))
    bad = 0
    for n, path, line, fn in sorted(rows, reverse=True):
        allowed = (path, fn) in ALLOWED
        bad += not allowed
        print(f"{n:5d} {path}:{line} {fn}{'  (allowed)' if allowed else ''}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
