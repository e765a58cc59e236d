// Runs MicroPython code for the firmware tests: node run.mjs < job.json
// job = {"files": {"name.py": "source", ...}, "code": "python source"}
// The files are written into the interpreter's filesystem with open(), then `code` runs.
// The interpreter is the one installed in firmware/sim (`make firmware-interpreter`).
// Exit 0 with the program's stdout; exit 1 with the traceback on stderr.
import { loadMicroPython } from "../../firmware/sim/interpreter.mjs";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const job = JSON.parse(Buffer.concat(chunks).toString("utf8"));

let out = "";
const mp = await loadMicroPython({
  stdout: (line) => { out += line + "\n"; },
  stderr: (line) => { process.stderr.write(line + "\n"); },
});
try {
  for (const [name, source] of Object.entries(job.files)) {
    const literal = JSON.stringify(source);
    mp.runPython(`import json\nwith open(${JSON.stringify(name)}, "w") as _f:\n    _f.write(json.loads(${JSON.stringify(literal)}))\ndel _f`);
  }
  mp.runPython(job.code);
} catch (err) {
  process.stdout.write(out);
  process.stderr.write(String(err.message || err) + "\n");
  process.exit(1);
}
process.stdout.write(out);
