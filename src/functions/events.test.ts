import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { platformEvent, PROJECT_ATTRIBUTE } from '../events/bus.js';
import { matchesFilter } from './events.js';

const ev = platformEvent({ type: 'dev.marina.cluster.created', project: 'p', plural: 'clusters', name: 'demo', subject: 'demo', id: 'u-1', data: { cluster: 'demo' } });

describe('event filters', () => {
  it('builds CloudEvents 1.0 with the project extension', () => {
    assert.equal(ev.specversion, '1.0');
    assert.equal(ev.source, '/marina/projects/p/clusters/demo');
    assert.equal(ev[PROJECT_ATTRIBUTE], 'p');
  });
  it('matches types (exact or prefix*), source prefix, subject and extensions; all must hold', () => {
    assert.equal(matchesFilter({}, ev), true);
    assert.equal(matchesFilter({ types: ['dev.marina.cluster.created'] }, ev), true);
    assert.equal(matchesFilter({ types: ['dev.marina.cluster.*'] }, ev), true);
    assert.equal(matchesFilter({ types: ['dev.marina.alert.*'] }, ev), false);
    assert.equal(matchesFilter({ source: '/marina/projects/p/' }, ev), true);
    assert.equal(matchesFilter({ source: '/marina/projects/q/' }, ev), false);
    assert.equal(matchesFilter({ subject: 'dem*' }, ev), true);
    assert.equal(matchesFilter({ subject: 'dem' }, ev), false);
    assert.equal(matchesFilter({ extensions: { marinaproject: 'p' } }, ev), true);
    assert.equal(matchesFilter({ types: ['dev.marina.cluster.*'], extensions: { marinaproject: 'q' } }, ev), false);
  });
});
