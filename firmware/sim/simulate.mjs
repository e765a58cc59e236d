// The virtual node behind `citygw node simulate`: the real firmware (firmware/*.py) on the
// MicroPython interpreter (npm @micropython/micropython-webassembly-pyscript, WebAssembly) with
// a virtual board (the fake `machine` in fakes/, virtual.py here). The node's UART is this process's stdin and
// stdout, raw bytes; everything the interpreter prints goes to stderr.
//
//   node simulate.mjs [--node-id N] [--interval-s N]
//
// Every STEP_MS the bytes received so far go to virtual.step(), which answers commands, runs a
// cycle when the node's interval is up and returns what the node wrote. Ends when stdin closes.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "./interpreter.mjs";

const STEP_MS = 100;
const HERE = dirname(fileURLToPath(import.meta.url));
const FIRMWARE = dirname(HERE);

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number.parseInt(process.argv[at + 1], 10);
  if (!Number.isInteger(value)) {
    process.stderr.write(`simulate.mjs: ${name} needs an integer\n`);
    process.exit(2);
  }
  return value;
}
const nodeId = option("--node-id", 17);
const intervalS = option("--interval-s", 60);

const mp = await loadMicroPython({
  stdout: (line) => { process.stderr.write(line + "\n"); },
  stderr: (line) => { process.stderr.write(line + "\n"); },
});

function writeFile(name, source) {
  const literal = JSON.stringify(JSON.stringify(source));
  mp.runPython(`import json\nwith open(${JSON.stringify(name)}, "w") as _f:\n` +
               `    _f.write(json.loads(${literal}))\ndel _f`);
}
for (const dir of [FIRMWARE, HERE, join(HERE, "fakes")]) {
  for (const name of readdirSync(dir).filter((n) => n.endsWith(".py")).sort()) {
    writeFile(name, readFileSync(join(dir, name), "utf8"));
  }
}
mp.runPython(`import virtual\nvirtual.start(${nodeId}, ${intervalS})`);
const virtual = mp.pyimport("virtual");

let received = [];
let open = true;
process.stdin.on("data", (chunk) => { received.push(chunk); });
process.stdin.on("end", () => { open = false; });
// Ctrl-C reaches the whole process group: citygw then closes stdin, which ends this loop.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => { open = false; });

while (open) {
  const rx = Buffer.concat(received).toString("hex");
  received = [];
  const tx = String(virtual.step(rx));
  if (tx.length > 0) process.stdout.write(Buffer.from(tx, "hex"));
  await new Promise((resolve) => setTimeout(resolve, STEP_MS));
}
process.exit(0);
