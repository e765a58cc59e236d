// The MicroPython interpreter (npm @micropython/micropython-webassembly-pyscript, WebAssembly),
// installed once, in this folder (package.json, package-lock.json; `make firmware-interpreter`).
// simulate.mjs, board.mjs and tests/firmware/run.mjs import it from here: a bare package name
// resolves from the importing file's folder, and only this one has node_modules beside it.
export { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
