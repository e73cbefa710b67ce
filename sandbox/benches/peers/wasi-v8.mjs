// Runs cells in the sandbox's own interpreter binary (python-snapshot.wasm) under V8, through
// node's WASI, for the sandbox benchmark: the same guest as the sandbox, another compiler.
// Usage: node wasi-v8.mjs RUNTIME_DIR DATA_DIR < cells.json
// RUNTIME_DIR holds python-snapshot.wasm, lib/ (the stdlib zip) and mpl-data/. cells.json and
// the printed JSON object are those of pyodide.mjs.
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, fstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WASI } from "node:wasi";

const [runtime, data] = process.argv.slice(2);
const cells = JSON.parse(readFileSync(0, "utf8"));
const outPath = join(mkdtempSync(join(tmpdir(), "wasi-v8-")), "out");
const out = openSync(outPath, "w+");
let read = 0;
function newOutput() {
  const size = fstatSync(out).size;
  const buf = Buffer.alloc(size - read);
  readSync(out, buf, 0, buf.length, read);
  read = size;
  return buf.toString("utf8");
}

const started = performance.now();
const wasm = readFileSync(join(runtime, "python-snapshot.wasm"));
const wasi = new WASI({
  version: "preview1",
  args: ["python"],
  env: {
    HOME: "/mnt/data", TMPDIR: "/mnt/data/.tmp", MPLCONFIGDIR: "/mnt/data/.matplotlib",
    MPLBACKEND: "Agg", PYTHONTZPATH: "", PYTHONDONTWRITEBYTECODE: "1",
  },
  preopens: {
    "/usr/local/lib": join(runtime, "lib"),
    "/usr/local/lib/python315.zip/matplotlib/mpl-data": join(runtime, "mpl-data"),
    "/mnt/data": data,
  },
  stdout: out,
  stderr: out,
});
const module = await WebAssembly.compile(wasm);
// The one host import besides WASI: answered "unavailable", as the sandbox answers it.
const instance = await WebAssembly.instantiate(module, {
  ...wasi.getImportObject(),
  host: { call: () => -1 },
});
wasi.initialize(instance);
const ready = performance.now() - started;

const encoder = new TextEncoder();
function turn(code) {
  const bytes = encoder.encode(code);
  const at = instance.exports.host_alloc(bytes.length);
  new Uint8Array(instance.exports.memory.buffer, at, bytes.length).set(bytes);
  instance.exports.turn(at, bytes.length);
}

const results = [];
for (const cell of cells) {
  const runs = [];
  let last = "";
  for (let i = 0; i < (cell.repeat || 1); i++) {
    newOutput();
    const t = performance.now();
    turn(cell.code);
    runs.push(performance.now() - t);
    const lines = newOutput().trim().split("\n");
    last = lines[lines.length - 1];
  }
  results.push({ name: cell.name, ms: runs, output: last });
}
closeSync(out);
console.log(JSON.stringify({ ready_ms: ready, cells: results }));
