// A virtual MicroPython board for `mpremote` (tests of `citygw node flash`): the interpreter's REPL
// (npm @micropython/micropython-webassembly-pyscript, WebAssembly) on this process's stdin and
// stdout, raw bytes, as a board's USB serial console. Bridge a pty to it and mpremote talks to it.
//
//   node board.mjs --root DIR [--platform esp32|rp2]
//
// The board's flash is DIR on the host (boardfs.py: a VFS with a board's errno numbers); `sys`
// reports --platform; `machine` is the virtual one of `citygw node simulate` (fakes/ here).
// What this port's REPL lacks, this runner supplies, as a board would answer:
// - raw-paste requests (05 41 01) get "R" 00 (not supported): mpremote uses the plain raw REPL;
// - Ctrl-D on an empty raw REPL line is a soft reset: "soft reboot", then the raw REPL again
//   (Python state is kept; a board would start afresh, without running main.py in raw mode).
// Ends when stdin closes.
import {
  appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmdirSync,
  statSync, unlinkSync, writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "./interpreter.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const CTRL_A = 0x01, CTRL_B = 0x02, CTRL_C = 0x03, CTRL_D = 0x04, CTRL_E = 0x05;

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  return at < 0 ? fallback : process.argv[at + 1];
}
const root = option("--root", null);
const platform = option("--platform", "esp32");
if (!root || !["esp32", "rp2"].includes(platform)) {
  process.stderr.write("usage: node board.mjs --root DIR [--platform esp32|rp2]\n");
  process.exit(2);
}
mkdirSync(root, { recursive: true });

// Host file I/O for boardfs.py. Paths are the board's ("/main.py"); failures answer "!ENAME".
function host(path) {
  return join(root, ...path.split("/").filter((p) => p && p !== ".."));
}
function guarded(fn) {
  return (...args) => {
    try {
      const result = fn(...args);
      return result === undefined ? "" : result;
    } catch (err) {
      return "!" + (err.code || "EIO");
    }
  };
}
const hostfs = {
  kind: guarded((p) => (statSync(host(p)).isDirectory() ? "dir" : "file")),
  stat: guarded((p) => {
    const st = statSync(host(p));
    return (st.isDirectory() ? "dir " : "file ") + (st.isDirectory() ? 0 : st.size);
  }),
  listdir: guarded((p) => readdirSync(host(p)).sort().map((name) => {
    const st = statSync(join(host(p), name));
    return `${name} ${st.isDirectory() ? "dir" : "file"} ${st.isDirectory() ? 0 : st.size}`;
  }).join("/")),
  read: guarded((p) => {
    if (statSync(host(p)).isDirectory()) throw Object.assign(new Error(), { code: "EISDIR" });
    return readFileSync(host(p)).toString("hex");
  }),
  write: guarded((p, hex) => writeFileSync(host(p), Buffer.from(hex, "hex"))),
  append: guarded((p, hex) => appendFileSync(host(p), Buffer.from(hex, "hex"))),
  remove: guarded((p) => unlinkSync(host(p))),
  rename: guarded((a, b) => {
    if (existsSync(host(b))) throw Object.assign(new Error(), { code: "EEXIST" });
    renameSync(host(a), host(b));
  }),
  mkdir: guarded((p) => mkdirSync(host(p))),
  rmdir: guarded((p) => rmdirSync(host(p))),
};

let out = [];
const mp = await loadMicroPython({
  stdout: (bytes) => { out.push(Buffer.from(bytes)); },
  stderr: (bytes) => { out.push(Buffer.from(bytes)); },
  linebuffer: false,
});
function flush() {
  if (out.length > 0) process.stdout.write(Buffer.concat(out));
  out = [];
}
mp.registerJsModule("hostfs", hostfs);
// The port's own filesystem holds the board's ROM (the fake machine and its devices, boardfs)
// until HostFS replaces it; what is imported here stays in sys.modules.
const ROM = ["fakes/devices", "fakes/machine", "boardfs"];
for (const path of ROM) {
  const name = path.split("/").pop();
  const source = readFileSync(join(HERE, `${path}.py`), "utf8");
  const literal = JSON.stringify(JSON.stringify(source));
  mp.runPython(`import json\nwith open("/${name}.py", "w") as _f:\n` +
               `    _f.write(json.loads(${literal}))\ndel _f\nimport ${name}`);
}
mp.runPython(`boardfs.install(${JSON.stringify(platform)})\ndel json, devices, machine, boardfs`);
out = [];  // nothing of the set-up reaches the console
mp.replInit();
flush();

let raw = false;
let pending = 0;  // bytes on the current raw REPL line
let inbox = Buffer.alloc(0);

function feed(byte) {
  if (!raw) {
    if (byte === CTRL_A) {
      raw = true;
      pending = 0;
    }
    mp.replProcessChar(byte);
    return;
  }
  if (byte === CTRL_B) {
    raw = false;
  } else if (byte === CTRL_D && pending === 0) {
    out.push(Buffer.from("MPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>"));
    return;
  } else if (byte === CTRL_A || byte === CTRL_C || byte === CTRL_D) {
    pending = 0;
  } else {
    pending += 1;
  }
  mp.replProcessChar(byte);
}

process.stdin.on("data", (chunk) => {
  inbox = Buffer.concat([inbox, chunk]);
  let i = 0;
  while (i < inbox.length) {
    if (raw && pending === 0 && inbox[i] === CTRL_E) {
      if (inbox.length - i < 3) break;  // the rest of a raw-paste request is still on its way
      if (inbox[i + 1] === 0x41 && inbox[i + 2] === CTRL_A) {
        out.push(Buffer.from("R\x00", "latin1"));
        i += 3;
        continue;
      }
    }
    feed(inbox[i]);
    i += 1;
  }
  inbox = inbox.subarray(i);
  flush();
});
process.stdin.on("end", () => { flush(); process.exit(0); });
process.on("SIGINT", () => {});  // Ctrl-C reaches the board as a byte, not as a signal
