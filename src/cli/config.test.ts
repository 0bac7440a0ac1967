import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configPath, contextNameFor, DEFAULT_SERVER, loadConfig, normalizeServer, resolveConnection, saveConfig, upsertContext, type CliConfig } from './config.js';

const cfg: CliConfig = {
  apiVersion: 'marina.dev/v1alpha1',
  kind: 'Config',
  'current-context': 'local',
  contexts: [
    { name: 'local', server: 'http://127.0.0.1:7443', token: 'tok-local', project: 'team-a' },
    { name: 'prod', server: 'https://marina.example.com', token: 'tok-prod' },
  ],
};

test('config path: MARINA_CONFIG, then XDG_CONFIG_HOME, then ~/.config', () => {
  assert.equal(configPath({ MARINA_CONFIG: '/x/c.yaml' }), '/x/c.yaml');
  assert.equal(configPath({ XDG_CONFIG_HOME: '/xdg' }), '/xdg/marina/config.yaml');
  assert.match(configPath({}), /\.config\/marina\/config\.yaml$/);
});

test('connection precedence: flags > env > context > default', () => {
  assert.deepEqual(resolveConnection(cfg, {}, {}), { server: 'http://127.0.0.1:7443', token: 'tok-local', project: 'team-a', contextName: 'local' });
  assert.equal(resolveConnection(cfg, { context: 'prod' }, {}).token, 'tok-prod');
  assert.equal(resolveConnection(cfg, {}, { MARINA_CONTEXT: 'prod' }).server, 'https://marina.example.com');
  assert.equal(resolveConnection(cfg, {}, { MARINA_TOKEN: 'env' }).token, 'env');
  assert.equal(resolveConnection(cfg, { token: 'flag' }, { MARINA_TOKEN: 'env' }).token, 'flag');
  assert.equal(resolveConnection(cfg, {}, { MARINA_PROJECT: 'team-b' }).project, 'team-b');
  assert.equal(resolveConnection({ ...cfg, contexts: [] , 'current-context': undefined }, {}, {}).server, DEFAULT_SERVER);
  assert.throws(() => resolveConnection(cfg, { context: 'nope' }, {}), /no context "nope"/);
});

test('a context token is not sent to a different server', () => {
  assert.equal(resolveConnection(cfg, { server: 'http://evil:1' }, {}).token, undefined);
  assert.equal(resolveConnection(cfg, {}, { MARINA_URL: 'http://evil:1' }).token, undefined);
  assert.equal(resolveConnection(cfg, { server: 'http://127.0.0.1:7443/' }, {}).token, 'tok-local');
  assert.equal(resolveConnection(cfg, { server: 'http://evil:1', token: 't' }, {}).token, 't');
});

test('server URLs and context names', () => {
  assert.equal(normalizeServer('127.0.0.1:7443'), 'http://127.0.0.1:7443');
  assert.equal(normalizeServer('https://m.example.com/'), 'https://m.example.com');
  assert.throws(() => normalizeServer('ftp://x'), /http or https/);
  assert.equal(contextNameFor('http://127.0.0.1:7443'), '127.0.0.1-7443');
  assert.equal(contextNameFor('https://marina.example.com'), 'marina.example.com');
});

test('save writes mode 0600 and round-trips; upsert replaces by name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'marina-cfg-'));
  try {
    const path = join(dir, 'sub', 'config.yaml');
    const next = upsertContext(cfg, { name: 'local', server: 'http://127.0.0.1:9000', token: 'new' });
    assert.equal(next.contexts.length, 2);
    saveConfig(next, path);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const back = loadConfig(path);
    assert.equal(back['current-context'], 'local');
    assert.deepEqual(back.contexts.find((c) => c.name === 'local'), { name: 'local', server: 'http://127.0.0.1:9000', token: 'new' });
    writeFileSync(path, '');
    assert.deepEqual(loadConfig(path).contexts, []);
    writeFileSync(path, '- a list');
    assert.throws(() => loadConfig(path), /not a YAML mapping/);
    assert.deepEqual(loadConfig(join(dir, 'missing.yaml')).contexts, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
