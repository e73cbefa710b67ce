#!/usr/bin/env python3
"""Render every golden input with the official GLM-4 chat template.

Reproduces the Jinja environment transformers uses for chat templates
(trim_blocks, lstrip_blocks, loopcontrols, a `tojson` that is
`json.dumps(ensure_ascii=False)` with key order kept) and writes
`NAME.expected.txt` next to each `NAME.json`. Needs only `jinja2`.

    python3 prompts/tests/golden/render.py          # rewrite the expected files
    python3 prompts/tests/golden/render.py --check  # fail if any differs
"""
import json
import pathlib
import sys

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = pathlib.Path(__file__).parent


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


def main():
    check = "--check" in sys.argv
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    template = env.from_string((HERE / "chat_template.jinja").read_text(encoding="utf-8"))
    failed = False
    for case in sorted(HERE.glob("*.json")):
        messages = json.loads(case.read_text(encoding="utf-8"))["messages"]
        text = template.render(messages=messages, add_generation_prompt=True)
        out = case.with_name(case.stem + ".expected.txt")
        if check:
            if out.read_text(encoding="utf-8") != text:
                print(f"differs: {out.name}")
                failed = True
        else:
            out.write_text(text, encoding="utf-8")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
