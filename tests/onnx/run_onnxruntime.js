// Runs every case that write_onnx_cases wrote (FOLDER/cases.txt) in ONNX Runtime and compares its
// output with latent's: the output shape must match exactly, and the relative error
//   max_i |onnxruntime_i - latent_i| / max_i |latent_i|
// (the largest difference measured against the largest output magnitude, so outputs that cross
// zero do not divide by near-zero values) must be at most 1e-5. Prints one line per case.
// Exit status 0 when every case passes, 1 otherwise; "SKIPPED: ..." and 0 when onnxruntime-node
// is not installed (npm install --ignore-scripts --no-package-lock, in this folder).
//
// Usage: node run_onnxruntime.js FOLDER
'use strict';

const fs = require('fs');
const path = require('path');

const tolerance = 1e-5;

// A little-endian float32 .npy file (save_npy's format 1.0): its shape and values.
function readNpy(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not an .npy file`);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.toString('latin1', 10, 10 + headerLength);
  if (!header.includes("'descr': '<f4'")) throw new Error(`${file}: not little-endian float32: ${header}`);
  const shapeText = header.match(/'shape': \(([^)]*)\)/)[1];
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const start = 10 + headerLength;
  const count = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  for (let i = 0; i < count; ++i) values[i] = bytes.readFloatLE(start + 4 * i);
  return { shape, values };
}

function relativeError(actual, expected) {
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; ++i) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return { relative: scale > 0 ? worst / scale : worst, absolute: worst };
}

async function runCase(ort, folder, name) {
  const input = readNpy(path.join(folder, `${name}.input.npy`));
  const expected = readNpy(path.join(folder, `${name}.expected.npy`));
  const session = await ort.InferenceSession.create(path.join(folder, `${name}.onnx`), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input.values, input.shape) };
  const output = (await session.run(feeds))[session.outputNames[0]];
  const shapeMatches = output.dims.length === expected.shape.length &&
    output.dims.every((d, i) => Number(d) === expected.shape[i]);
  if (!shapeMatches) return { ok: false, text: `output shape [${output.dims}] but latent's is [${expected.shape}]` };
  const error = relativeError(output.data, expected.values);
  return {
    ok: error.relative <= tolerance,
    text: `max relative error ${error.relative.toExponential(2)} (absolute ${error.absolute.toExponential(2)}), ` +
      `output [${expected.shape}]`,
  };
}

async function main() {
  const folder = process.argv[2];
  if (!folder) {
    console.error('usage: node run_onnxruntime.js FOLDER');
    process.exit(2);
  }
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (error) {
    console.log(`SKIPPED: onnxruntime-node is not installed (npm install --ignore-scripts --no-package-lock in ${__dirname})`);
    return;
  }
  const names = fs.readFileSync(path.join(folder, 'cases.txt'), 'utf8').split('\n').filter((n) => n.length > 0);
  const failed = [];
  for (const name of names) {
    let result;
    try {
      result = await runCase(ort, folder, name);
    } catch (error) {
      result = { ok: false, text: `ONNX Runtime failed: ${error.message}` };
    }
    console.log(`${result.ok ? 'ok  ' : 'FAIL'} ${name}: ${result.text}`);
    if (!result.ok) failed.push(name);
  }
  console.log(`${names.length - failed.length} passed, ${failed.length} failed (ONNX Runtime ${ort.env.versions.common}, tolerance ${tolerance})`);
  if (failed.length > 0) process.exit(1);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
