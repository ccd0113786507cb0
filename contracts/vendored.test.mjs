// The API pages' assets in local-gateway/static/vendor/ are byte for byte the files of the npm
// packages pinned in package-lock.json (npm ci checked those against the lock's integrity
// hashes), as vendored.json lists them; scripts/vendor-api-page copies them.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, it } from 'node:test';

const here = (p) => new URL(p, import.meta.url);
const sha256 = (p) => createHash('sha256').update(readFileSync(p)).digest('hex');
const manifest = JSON.parse(readFileSync(here('vendored.json'), 'utf8'));
const lock = JSON.parse(readFileSync(here('package-lock.json'), 'utf8'));
const pinned = JSON.parse(readFileSync(here('package.json'), 'utf8')).devDependencies;

describe('vendored API page assets', () => {
  for (const { package: pkg, file, as } of manifest.files) {
    it(`${as} is ${pkg}/${file} at the pinned version`, () => {
      const installed = JSON.parse(readFileSync(here(`node_modules/${pkg}/package.json`), 'utf8')).version;
      assert.equal(pinned[pkg], installed, `package.json pins ${pkg} at an exact version, installed`);
      assert.equal(lock.packages[`node_modules/${pkg}`].version, installed);
      assert.equal(
        sha256(here(`../local-gateway/static/vendor/${as}`)),
        sha256(here(`node_modules/${pkg}/${file}`)),
        `local-gateway/static/vendor/${as} differs from ${pkg}@${installed}: run scripts/vendor-api-page`,
      );
    });
  }

  it('the vendor folder holds nothing else', () => {
    const listed = manifest.files.map((f) => f.as).sort();
    assert.deepEqual(readdirSync(here('../local-gateway/static/vendor/')).sort(), listed);
  });
});
