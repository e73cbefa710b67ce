// Runs cells in Pyodide (Python in V8's WebAssembly) for the sandbox benchmark.
// Usage: node pyodide.mjs PYODIDE_DIR < cells.json
// cells.json: [{"name": ..., "code": ..., "repeat": N}]; prints one JSON object: the time to a
// ready interpreter, and per cell the wall milliseconds of each run and its last output line
// (or the error that stopped it).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.argv[2];
const { loadPyodide } = await import(pathToFileURL(join(dir, "pyodide.mjs")).href);
const cells = JSON.parse(readFileSync(0, "utf8"));

let out = [];
const started = performance.now();
const py = await loadPyodide({ indexURL: dir + "/", stdout: (s) => out.push(s) });
const ready = performance.now() - started;

const results = [];
for (const cell of cells) {
  const runs = [];
  let last = "";
  for (let i = 0; i < (cell.repeat || 1); i++) {
    out = [];
    const t = performance.now();
    try {
      py.runPython(cell.code);
    } catch (e) {
      // e.g. numpy and pandas are not in the npm package: Pyodide fetches them from its CDN.
      const lines = String(e.message || e).trim().split("\n");
      last = "error: " + (lines.find((l) => /Error/.test(l)) || lines[0]);
      break;
    }
    runs.push(performance.now() - t);
    last = out.length ? out[out.length - 1] : "";
  }
  results.push({ name: cell.name, ms: runs, output: last });
}
console.log(JSON.stringify({ ready_ms: ready, cells: results }));
