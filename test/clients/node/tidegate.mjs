// Runs real tidegate processes for the SDK suites: the binary is built from
// this repository (or taken from TIDEGATE_BIN), started on a loopback port
// with --addr-file, and stopped when the suite ends.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');

// The sim's answers start with this marker (internal/provider/sim).
export const simMarker = '[simulated]';
export const outputTokens = 12;

// Every suite is bounded: a hung stream fails it rather than stalling CI.
export const bounded = { timeout: 30_000 };

let built;

// binary returns a tidegate executable: TIDEGATE_BIN when given (npm test
// and .ci/run build one first), else a `go build` of this checkout into a
// temporary folder, removed when the process ends.
function binary() {
  if (process.env.TIDEGATE_BIN) return process.env.TIDEGATE_BIN;
  if (!built) {
    const dir = mkdtempSync(join(tmpdir(), 'tidegate-build-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    built = join(dir, 'tidegate');
    execFileSync('go', ['build', '-o', built, './cmd/tidegate'], { cwd: repoRoot, stdio: 'inherit' });
  }
  return built;
}

// start serves config (YAML; STORE is replaced by a fresh SQLite file) and
// resolves once tidegate has written its address.
async function start(dir, name, config) {
  const cfgPath = join(dir, `${name}.yaml`);
  const addrFile = join(dir, `${name}.addr`);
  writeFileSync(cfgPath, config.replaceAll('STORE', `sqlite:${join(dir, `${name}.db`)}`));
  const proc = spawn(binary(), ['serve', '--config', cfgPath, '--listen', '127.0.0.1:0', '--addr-file', addrFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (b) => { stderr += b; });
  let exited = null;
  const gone = new Promise((done) => proc.once('exit', (code, signal) => {
    exited = { code, signal };
    done();
  }));
  // A test process that dies mid-suite leaves no server behind.
  process.once('exit', () => proc.kill('SIGKILL'));
  const deadline = Date.now() + 20_000;
  while (!existsSync(addrFile)) {
    if (exited) throw new Error(`tidegate ${name} stopped before listening (${exited.code ?? exited.signal}):\n${stderr}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`tidegate ${name} did not listen within 20s:\n${stderr}`);
    }
    await sleep(20);
  }
  const url = `http://${readFileSync(addrFile, 'utf8').trim()}`;
  // stop ends the server and fails when it did not end cleanly: a crash
  // mid-suite, or the race detector's report (CI runs a -race build).
  const stop = async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      // Unref'd: a pending kill timer must not keep the test process alive.
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5_000).unref();
      await gone;
      clearTimeout(killer);
    }
    if (exited.code !== 0 || stderr.includes('DATA RACE')) {
      throw new Error(`tidegate ${name} ended with ${exited.code ?? exited.signal}:\n${stderr}`);
    }
  };
  return { url, stop };
}

// startFleet starts the suites' topology: tidegate in front of its built-in
// sim, and of an Anthropic-dialect upstream (a second tidegate's
// /v1/messages, itself on the sim), so /v1/messages is exercised both
// translated ("chat") and towards an Anthropic-speaking target ("claude").
export async function startFleet() {
  const dir = mkdtempSync(join(tmpdir(), 'tidegate-node-'));
  const masterKey = `tg-master-node-${randomBytes(12).toString('hex')}`;
  const upstreamKey = `upstream-anthropic-${randomBytes(12).toString('hex')}`;
  const upstream = await start(dir, 'upstream', `
store: STORE
master_key: ${upstreamKey}
log_level: warn
providers:
  - name: sim
    type: sim
    sim: {seed: 3, models: [{name: fast, output_tokens: ${outputTokens}}]}
models:
  - {name: claude-sim, targets: [sim/fast]}
`);
  let gateway;
  try {
    gateway = await start(dir, 'gateway', `
store: STORE
master_key: ${masterKey}
log_level: warn
providers:
  - name: sim
    type: sim
    sim:
      seed: 1
      models:
        - {name: fast, output_tokens: ${outputTokens}}
        - {name: embed}
        - {name: down, fault: {kind: "503", rate: 1}}
  - name: claude
    type: anthropic
    base_url: ${upstream.url}
    api_key: ${upstreamKey}
    models: [claude-sim]
models:
  - {name: chat, targets: [sim/fast]}
  - {name: claude, targets: [claude/claude-sim]}
  - {name: embed, targets: [sim/embed]}
  - {name: down, targets: [sim/down]}
`);
  } catch (err) {
    await upstream.stop();
    throw err;
  }
  return {
    url: gateway.url,
    masterKey,
    // createKey issues a virtual key through the admin API.
    async createKey(body) {
      const res = await fetch(`${gateway.url}/admin/keys`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${masterKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status !== 201) throw new Error(`POST /admin/keys: ${res.status} ${await res.text()}`);
      return (await res.json()).key;
    },
    async stop() {
      try {
        await gateway.stop();
      } finally {
        await upstream.stop().finally(() => rmSync(dir, { recursive: true, force: true }));
      }
    },
  };
}

// useFleet starts a fleet before a test file's suites and stops it after.
// connect(url, apiKey) makes the file's SDK client; the result's client
// (on the master key) and clientFor(key) are ready inside tests.
export function useFleet(connect) {
  const env = {
    fleet: null,
    client: null,
    clientFor: (apiKey) => connect(env.fleet.url, apiKey),
  };
  before(async () => {
    env.fleet = await startFleet();
    env.client = env.clientFor(env.fleet.masterKey);
  });
  after(async () => {
    await env.fleet?.stop();
  });
  return env;
}

// rejectsAs asserts that promise fails with an error of the SDK class want,
// then runs check on that error.
export async function rejectsAs(promise, want, check = () => {}) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof want, `${err.constructor.name}: ${err.message}`);
    check(err);
    return true;
  });
}
