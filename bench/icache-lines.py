#!/usr/bin/env python3
"""The code footprint of a callgrind run, per 64-byte line of code.

Usage: icache-lines.py CALLGRIND_OUT UNITS [TOP]

CALLGRIND_OUT comes from `valgrind --tool=callgrind --dump-instr=yes --cache-sim=yes ...`;
UNITS is what to divide by (20000 for `msgr bench --mode rr --depth 1 --count 20000`).
Prints the lines of code run at least 0.3 times per unit (the footprint), how they fill the
simulated L1i's 64 sets (8 ways each: a set holding more than 8 such lines misses on nearly
every one, a set holding 8 or fewer on almost none), the L1i misses in each kind of set, and
the TOP functions by lines touched (a line is counted for the function with most
instructions in it).

What it does not do: it reads costs only (callgrind records no access order), and it
does not parse `--collect-jumps` files.
"""
import collections
import re
import sys


def parse(path):
    """Ir and I1mr per instruction address, and the function of each address."""
    names = {}

    def name(s):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?", s)
        if not m:
            return s
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), "?")

    ir, mr, fn_of = collections.Counter(), collections.Counter(), {}
    fn, pos, skip = "?", [0, 0], False
    for raw in open(path):
        line = raw.rstrip("\n")
        if not line:
            continue
        if line[0].isdigit() or line[0] in "+-*":
            parts = line.split()
            for i, p in enumerate(parts[:2]):
                if p == "*":
                    continue
                if p[0] in "+-":
                    pos[i] += int(p, 0)
                else:
                    pos[i] = int(p, 0)
            if skip:  # the inclusive cost of a call, not this line's own
                skip = False
                continue
            costs = [int(x) for x in parts[2:]] + [0] * 9
            ir[pos[0]] += costs[0]
            mr[pos[0]] += costs[3]  # events: Ir Dr Dw I1mr ...
            fn_of.setdefault(pos[0], fn)
        elif line.startswith("fn="):
            fn = name(line[3:])
        elif line.startswith("calls="):
            skip = True
        elif "=" in line.split(" ")[0]:
            name(line.split("=", 1)[1])
    return ir, mr, fn_of


def main():
    path, units = sys.argv[1], float(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    ir, mr, fn_of = parse(path)
    line_ir, line_mr = collections.Counter(), collections.Counter()
    line_fn = collections.defaultdict(collections.Counter)
    for a, n in ir.items():
        line_ir[a >> 6] += n
        line_mr[a >> 6] += mr[a]
        line_fn[a >> 6][fn_of[a]] += n + 1
    touched = [ln for ln, n in line_ir.items() if n / units >= 0.3]
    sets = collections.Counter(ln % 64 for ln in touched)
    full = sum(line_mr[ln] for ln in touched if sets[ln % 64] > 8) / units
    fits = sum(line_mr[ln] for ln in touched if sets[ln % 64] <= 8) / units
    print(f"instructions per unit {sum(ir.values()) / units:.0f}, "
          f"L1i misses per unit {sum(mr.values()) / units:.1f}")
    print(f"lines touched per unit: {len(touched)} ({len(touched) * 64} bytes)")
    print("sets by lines touched (lines: sets):",
          dict(sorted(collections.Counter(sets.values()).items())))
    print(f"misses per unit in sets of more than 8 lines {full:.0f}, in the others {fits:.0f}")
    per_fn = collections.defaultdict(lambda: [0, 0.0])
    for ln in touched:
        f = line_fn[ln].most_common(1)[0][0]
        per_fn[f][0] += 1
        per_fn[f][1] += line_mr[ln] / units
    for f, (n, m) in sorted(per_fn.items(), key=lambda x: -x[1][0])[:top]:
        print(f"{n:5d} lines {m:7.1f} misses  {f[:150]}")


if __name__ == "__main__":
    main()
