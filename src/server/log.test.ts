import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, logFormatFrom } from './log.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, destination };
}

test('text lines read as time, level, module, object key, message, then the other fields', () => {
  const { lines, destination } = capture();
  const log = createLogger({ format: 'text', destination, colorize: false, level: 'info' });
  log.child({ module: 'controllers' }).child({ controller: 'cluster' }).child({ key: 'Cluster/demo/web' }).info({ phase: 'Ready' }, 'reconciled');
  log.child({ module: 'api' }).warn('watcher too slow');
  log.info('no module');
  log.debug('below the level');
  assert.equal(lines.length, 3, lines.join('\n'));
  assert.match(lines[0]!, /^\d{2}:\d{2}:\d{2}\.\d{3} INFO: \[controllers\/cluster Cluster\/demo\/web\] reconciled \{"phase":"Ready"\}$/);
  assert.match(lines[1]!, /^\d{2}:\d{2}:\d{2}\.\d{3} WARN: \[api\] watcher too slow$/);
  assert.match(lines[2]!, /^\d{2}:\d{2}:\d{2}\.\d{3} INFO: no module$/);
});

test('json lines stay JSON with every field', () => {
  const { lines, destination } = capture();
  createLogger({ format: 'json', destination, level: 'info' }).child({ module: 'api' }).info({ key: 'Cluster/p/c' }, 'hello');
  const line = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(line.module, 'api');
  assert.equal(line.key, 'Cluster/p/c');
  assert.equal(line.msg, 'hello');
  assert.equal(line.level, 30);
});

test('the format: flag, else MARINA_LOG_FORMAT, else text on a terminal and JSON otherwise', () => {
  assert.equal(logFormatFrom(undefined, {}, true), 'text');
  assert.equal(logFormatFrom(undefined, {}, false), 'json');
  assert.equal(logFormatFrom(undefined, { MARINA_LOG_FORMAT: 'text' }, false), 'text');
  assert.equal(logFormatFrom('json', { MARINA_LOG_FORMAT: 'text' }, true), 'json');
  assert.throws(() => logFormatFrom(undefined, { MARINA_LOG_FORMAT: 'xml' }, true), /MARINA_LOG_FORMAT/);
});
