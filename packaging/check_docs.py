#!/usr/bin/env python3
"""Check that every public function declared in include/cio/*.h is documented.

A public function is a file-scope declaration of a function named cio_...
(names starting with cio__ are internal). It is documented when a /* ... */
comment block ends on the line right above it, or when it belongs to a group:
a run of declarations with no blank line between them, the first of which has
such a comment. A declaration after a blank line, a preprocessor line or a
trailing comment of another declaration has to carry its own comment.

Usage: check_docs.py [SOURCE_DIR]   (default: the directory above this script)
Prints file:line for each undocumented function; exits 1 if there is any.
"""
import glob
import os
import re
import sys

FUNC_RE = re.compile(r"\b(cio_\w+)\s*\(")


class Item:
    def __init__(self, kind, start, end, text="", trailing=False):
        self.kind = kind          # "comment", "preproc" or "stmt"
        self.start = start        # first line (1-based)
        self.end = end            # last line
        self.text = text          # statement text up to its first '{'
        self.trailing = trailing  # comment after code on the same line


def scan(src):
    """Split a header into comments, preprocessor directives and file-scope
    statements (declarations and definitions), each with its line span."""
    items = []
    i, n, line = 0, len(src), 1
    depth = 0
    extern_c = []         # depth at which each extern "C" { was opened
    stmt = None           # statement being collected: [start, head, in_body]
    line_has_code = False

    def end_stmt(end_line):
        nonlocal stmt
        items.append(Item("stmt", stmt[0], end_line, stmt[1]))
        stmt = None

    while i < n:
        c = src[i]
        if c in " \t\r\f\v\n":
            if stmt is not None and not stmt[2]:
                stmt[1] += " "
            if c == "\n":
                line += 1
                line_has_code = False
            i += 1
            continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            start = line
            line += src.count("\n", i, j)
            items.append(Item("comment", start, line, trailing=line_has_code))
            i = j
            continue
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            items.append(Item("comment", line, line, trailing=line_has_code))
            i = j
            continue
        if c == "#" and not line_has_code and stmt is None:
            start = line
            while True:  # the directive, with its continuation lines
                j = src.find("\n", i)
                if j < 0:
                    i = n
                    break
                if src[i:j].rstrip().endswith("\\"):
                    line += 1
                    i = j + 1
                    continue
                i = j
                break
            items.append(Item("preproc", start, line))
            continue
        if c in "\"'":  # string or character literal
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            if stmt is None:
                stmt = [line, "", False]
            if not stmt[2]:
                stmt[1] += src[i:j + 1]
            line_has_code = True
            i = j + 1
            continue
        line_has_code = True
        if stmt is None:
            if c == "}" and extern_c and extern_c[-1] == depth:
                extern_c.pop()
                i += 1
                continue
            stmt = [line, "", False]
        if c == "{":
            if depth == 0 and re.fullmatch(r'\s*extern\s*"C"\s*', stmt[1]):
                extern_c.append(depth)
                stmt = None
            else:
                depth += 1
                stmt[2] = True
        elif c == "}":
            depth -= 1
            if depth == 0 and not re.match(r"\s*(typedef|struct|union|enum)\b",
                                           stmt[1]):
                end_stmt(line)  # the body of an inline function
        elif c == ";" and depth == 0:
            end_stmt(line)
        elif not stmt[2]:
            stmt[1] += c
        i += 1
    return items


def documented(items, k, memo):
    """Whether statement items[k] has a comment right above it, directly or
    through the group of declarations it belongs to."""
    if k in memo:
        return memo[k]
    memo[k] = False
    start = items[k].start
    p = k - 1
    result = False
    if p >= 0:
        prev = items[p]
        adjacent = prev.end >= start - 1
        if prev.kind == "comment" and not prev.trailing:
            result = adjacent
        elif prev.kind in ("stmt", "comment") and adjacent:
            while p >= 0 and items[p].kind == "comment" and items[p].trailing:
                p -= 1
            if p >= 0 and items[p].kind == "stmt" and prev.kind == "stmt":
                result = documented(items, p, memo)
    memo[k] = result
    return result


def public_function(item):
    if item.kind != "stmt":
        return None
    head = " ".join(item.text.split())
    if re.match(r"(typedef|struct|union|enum)\b", head) or "=" in head:
        return None
    m = FUNC_RE.search(head)
    if not m or m.group(1).startswith("cio__"):
        return None
    return m.group(1)


def check(root):
    offenders, checked = [], 0
    headers = sorted(glob.glob(os.path.join(root, "include", "cio", "*.h")))
    if not headers:
        print(f"check_docs: no headers under {root}/include/cio", file=sys.stderr)
        return 2
    for path in headers:
        with open(path, encoding="utf-8") as f:
            items = scan(f.read())
        memo = {}
        for k, item in enumerate(items):
            name = public_function(item)
            if name is None:
                continue
            checked += 1
            if not documented(items, k, memo):
                rel = os.path.relpath(path, root)
                offenders.append(f"{rel}:{item.start}: {name} has no doc comment")
    for o in offenders:
        print(o)
    print(f"check_docs: {checked} public functions, {len(offenders)} undocumented")
    return 1 if offenders else 0


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(here)
    sys.exit(check(root))
