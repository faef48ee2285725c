#!/usr/bin/python3
"""Refresh the README's command-line reference: the ```text block under
each "### `nabla CMD`" heading becomes what `build/nabla CMD --help` prints
now (tests/readme_check.sh fails while an option is missing there).

    /usr/bin/python3 scripts/readme_help.py [--build build]
"""
import re, subprocess, sys

build = sys.argv[sys.argv.index("--build") + 1] if "--build" in sys.argv else "build"
text = open("README.md").read()
start = text.index("## Command-line reference")
end = text.index("\n## ", start + 1)
part = text[start:end]


def refresh(m):
    cmd = m.group(1)
    if cmd == "itself":
        return m.group(0)
    out = subprocess.run([build + "/nabla", cmd, "--help"], capture_output=True, text=True).stdout
    return m.group(0)[:m.start(2) - m.start(0)] + out.rstrip("\n") + "\n" + m.group(0)[m.end(2) - m.start(0):]


part = re.sub(r"### `nabla (\w+)`\n\n```text\n(.*?)```", refresh, part, flags=re.S)
open("README.md", "w").write(text[:start] + part + text[end:])
