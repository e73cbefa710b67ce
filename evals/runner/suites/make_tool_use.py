#!/usr/bin/env python3
"""Writes tool_use.jsonl: tasks solved with the python tool and with simple_browser over the
fixture site in evals/sites/, which `glm-agent eval` serves on 127.0.0.1 (`{site}` in a task or
reference output is its address).

    python3 evals/suites/make_tool_use.py
"""
import json
import pathlib

PY = "python\n```python\n{}\n```<|observation|>"
OPEN = 'simple_browser\nopen_url("{{site}}/{}")<|observation|>'

cases = [
    ("py_squares", ["python"], "What is the sum of the squares of the integers 1 to 100? Use python.",
     {"kind": "numeric", "value": 338350}, [PY.format("print(sum(i*i for i in range(1, 101)))"), "The sum is 338350.<|user|>"]),
    ("py_primes", ["python"], "How many primes are there below 10000? Compute it.",
     {"kind": "numeric", "value": 1229}, [PY.format("n=10000\ns=[1]*n\ns[0]=s[1]=0\nfor i in range(2,int(n**0.5)+1):\n    if s[i]:\n        s[i*i::i]=[0]*len(s[i*i::i])\nprint(sum(s))"), "There are 1229 primes below 10000.<|user|>"]),
    ("py_power", ["python"], "What is 2 to the power 64, exactly?",
     {"kind": "contains", "text": "18446744073709551616"}, [PY.format("print(2**64)"), "2^64 = 18446744073709551616<|user|>"]),
    ("py_fibonacci", ["python"], "Give the 50th Fibonacci number (F1 = F2 = 1).",
     {"kind": "numeric", "value": 12586269025}, [PY.format("a, b = 1, 1\nfor _ in range(48):\n    a, b = b, a + b\nprint(b)"), "F50 = 12586269025<|user|>"]),
    ("py_stats", ["python"], "What is the sample standard deviation of 2, 4, 4, 4, 5, 5, 7, 9? Round to 3 decimals.",
     {"kind": "numeric", "value": 2.138, "tolerance": 0.001}, [PY.format("import statistics\nprint(round(statistics.stdev([2,4,4,4,5,5,7,9]), 3))"), "The sample standard deviation is 2.138.<|user|>"]),
    ("web_population", ["simple_browser"], "Open {site}/cities.html and tell me the population of Lindholm.",
     {"kind": "numeric", "value": 131577}, [OPEN.format("cities.html"), "Lindholm has 131577 inhabitants.<|user|>"]),
    ("web_price", ["simple_browser"], "According to {site}/prices.html, what does a kilo of coffee beans cost?",
     {"kind": "regex", "pattern": "14[.,]75"}, [OPEN.format("prices.html"), "Coffee beans cost 14.75 euros per kilo.<|user|>"]),
    ("web_keeper", ["simple_browser"], "Read {site}/history.html: who kept the Skarholmen lighthouse the longest?",
     {"kind": "contains", "text": "Ingrid Solvang"}, [OPEN.format("history.html"), "Ingrid Solvang, for 41 years.<|user|>"]),
    ("web_and_python", ["python", "simple_browser"], "Open {site}/cities.html and use python to add up the populations of all the cities listed.",
     {"kind": "numeric", "value": 280480}, [OPEN.format("cities.html"), PY.format("print(48210 + 131577 + 77004 + 23689)"), "Together they have 280480 inhabitants.<|user|>"]),
    ("web_increase", ["python", "simple_browser"], "From {site}/prices.html, by what percentage did cardamom rise since last month? Compute it, 1 decimal.",
     {"kind": "numeric", "value": 7.4, "tolerance": 0.05}, [OPEN.format("prices.html"), PY.format("print(round((62.40 - 58.10) / 58.10 * 100, 1))"), "Cardamom rose by 7.4%.<|user|>"]),
    ("py_file", ["python"], "Use python to write the first 10 square numbers to /mnt/data/squares.txt, one per line, then say done.",
     {"kind": "python", "code": "open('/mnt/data/squares.txt').read().split() == [str(i * i) for i in range(1, 11)]"},
     [PY.format("with open('/mnt/data/squares.txt', 'w') as f:\n    f.write('\\n'.join(str(i * i) for i in range(1, 11)))"), "Done: /mnt/data/squares.txt has the first 10 squares.<|user|>"]),
    ("py_check_answer", ["python"], "What is the 10th prime? Answer with the number only.",
     {"kind": "python", "code": "answer.strip() == '29'"},
     [PY.format("p = [n for n in range(2, 100) if all(n % d for d in range(2, n))]\nprint(p[9])"), "29<|user|>"]),
]

lines = []
for cid, tools, task, check, reference in cases:
    lines.append(json.dumps({"id": cid, "category": "python" if tools == ["python"] else "browser",
                             "task": task, "builtins": tools, "check": check,
                             "reference": reference}, ensure_ascii=False))
out = pathlib.Path(__file__).with_name("tool_use.jsonl")
out.write_text("\n".join(lines) + "\n")
print(f"{len(lines)} cases -> {out}")
