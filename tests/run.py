#!/usr/bin/env python3
"""run.py: the test runner. Imports every tests/test_*.py, runs each top-level function test_*
in file order, prints `PASS name`, `FAIL name: reason` or `SKIP name: reason` per test and ends
with `N passed, N failed, N skipped`; exits 1 if any test failed. It never judges a result itself.

usage: python3 tests/run.py [-k SUBSTR]... [-v] [-x]
  -k SUBSTR  run only tests whose name (module.function) contains SUBSTR (several -k: any)
  -v         print the traceback of each failure
  -x         stop at the first failure"""
import argparse
import importlib
import inspect
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import lib  # noqa: E402


def collect():
    tests = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        modname = fname[:-3]
        try:
            mod = importlib.import_module(modname)
        except Exception as e:  # a module that does not import is one failing test
            tests.append((modname + ".<import>", e))
            continue
        funcs = [f for n, f in vars(mod).items()
                 if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == modname]
        funcs.sort(key=lambda f: f.__code__.co_firstlineno)
        tests += [("%s.%s" % (modname, f.__name__), f) for f in funcs]
    return tests


def one_line(text):
    text = " | ".join(l.strip() for l in str(text).strip().splitlines() if l.strip())
    return text if len(text) <= 2000 else text[:2000] + " ..."


def main():
    ap = argparse.ArgumentParser(description="mapprof test runner")
    ap.add_argument("-k", action="append", default=[], metavar="SUBSTR")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("-x", action="store_true")
    args = ap.parse_args()
    passed = failed = skipped = 0
    for name, fn in collect():
        if args.k and not any(k in name for k in args.k):
            continue
        t0 = time.monotonic()
        try:
            if isinstance(fn, Exception):
                raise fn
            fn()
        except lib.Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (name, one_line(e)), flush=True)
            continue
        except Exception as e:  # noqa: BLE001 - every error is a failure of that test
            failed += 1
            reason = one_line(e) or type(e).__name__
            if not isinstance(e, AssertionError):
                reason = "%s: %s" % (type(e).__name__, reason)
            print("FAIL %s: %s" % (name, reason), flush=True)
            if args.v:
                traceback.print_exc()
            if args.x:
                break
            continue
        passed += 1
        extra = " (%.1fs)" % (time.monotonic() - t0) if args.v else ""
        print("PASS %s%s" % (name, extra), flush=True)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
