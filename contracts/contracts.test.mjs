// The generated API contracts (docs/openapi.json, docs/asyncapi.json, written by the Rust
// generator in shared/src/contract) checked by their official validators: OpenAPI 3.1 against
// the OpenAPI Initiative's JSON schema, AsyncAPI 3 by the AsyncAPI parser (its JSON schemas and
// rules). Each validator is also shown a broken copy, so a validator that accepts anything fails.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { Parser } from '@asyncapi/parser';
import { Validator } from '@seriousme/openapi-schema-validator';

const read = (file) => JSON.parse(readFileSync(new URL(`../docs/${file}`, import.meta.url), 'utf8'));

async function openapiErrors(doc) {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  return { version: validator.version, errors: result.valid ? [] : result.errors };
}

/** The parser's error diagnostics (severity 0); warnings are printed, not failed on. */
async function asyncapiErrors(doc) {
  const { diagnostics } = await new Parser().parse(JSON.stringify(doc));
  for (const d of diagnostics.filter((d) => d.severity !== 0)) {
    console.log(`asyncapi ${['error', 'warning', 'info', 'hint'][d.severity]}: ${d.code} ${d.message} at ${d.path.join('.')}`);
  }
  return diagnostics.filter((d) => d.severity === 0).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`);
}

describe('docs/openapi.json', () => {
  const doc = read('openapi.json');

  it('is a valid OpenAPI 3.1 document', async () => {
    const { version, errors } = await openapiErrors(doc);
    assert.deepEqual(errors, []);
    assert.equal(version, '3.1');
  });

  it('is refused when broken (the validator is live)', async () => {
    const broken = structuredClone(doc);
    delete broken.info;
    broken.paths['/businesses'].get.responses = 'none';
    const { errors } = await openapiErrors(broken);
    assert.ok(errors.length > 0, 'a document without info was accepted');
  });
});

describe('docs/asyncapi.json', () => {
  const doc = read('asyncapi.json');

  it('is a valid AsyncAPI 3 document', async () => {
    assert.equal(doc.asyncapi.split('.')[0], '3');
    assert.deepEqual(await asyncapiErrors(doc), []);
  });

  it('is refused when broken (the parser is live)', async () => {
    const broken = structuredClone(doc);
    broken.operations.sendEvents.action = 'shout';
    broken.operations.receivePing.channel = { $ref: '#/channels/nowhere' };
    assert.ok((await asyncapiErrors(broken)).length > 0, 'a broken document was accepted');
  });
});
