import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUMP_REVISION, revisionBump } from './restore.js';

test('a restore moves revisions past the highest the cluster reached, never back', () => {
  // First restore of an early snapshot: the plain margin.
  assert.equal(revisionBump(5_000, 4_000), BUMP_REVISION);
  assert.equal(revisionBump(5_000, 5_000), BUMP_REVISION);
  // The cluster went on to 2e9 (after two restores); restoring a snapshot of revision 1e9+300
  // must land above 2e9, not at 2e9+300 - (2e9 - (1e9+300)).
  const snapshot = 1_000_000_300;
  const highest = 2_000_000_700;
  const landed = snapshot + revisionBump(snapshot, highest);
  assert.ok(landed > highest, `${landed} > ${highest}`);
  assert.equal(landed - highest, BUMP_REVISION);
});
