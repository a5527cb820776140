#!/usr/bin/env node
// Runs HubSpot's official Node SDK (@hubspot/api-client) against `crmkit sandbox hubspot`.
//
// Not run in CI (it needs the SDK from npm). Usage:
//
//   crmkit sandbox hubspot --port 8026 --companies 20 &
//   mkdir /tmp/sdk && (cd /tmp/sdk && npm init -y && npm install @hubspot/api-client)
//   NODE_PATH=/tmp/sdk/node_modules HUBSPOT_BASE_URL=http://127.0.0.1:8026 node scripts/sdk-check/hubspot_node_sdk.js
//
// Each check prints one line; the script exits non-zero at the first failure.

const hubspot = require('@hubspot/api-client');

const BASE = (process.env.HUBSPOT_BASE_URL || 'http://127.0.0.1:8026').replace(/\/$/, '');
const TOKEN = process.env.HUBSPOT_ACCESS_TOKEN || 'sdk-check';

function check(name, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name} ${detail}`.trimEnd());
  if (!ok) process.exit(1);
}

async function main() {
  const run = Math.random().toString(16).slice(2, 10);
  const client = new hubspot.Client({ accessToken: TOKEN, basePath: BASE });
  const contacts = client.crm.contacts;

  const made = await contacts.basicApi.create({
    properties: { email: `js-${run}@sdk.example`, firstname: 'Js' },
    associations: [],
  });
  check('crm.contacts.basicApi.create', Boolean(made.id), made.id);
  const updated = await contacts.basicApi.update(made.id, { properties: { lastname: 'Sdk' } });
  check('crm.contacts.basicApi.update', updated.properties.lastname === 'Sdk');
  const got = await contacts.basicApi.getById(made.id, ['email', 'lastname']);
  check('crm.contacts.basicApi.getById', got.properties.email === `js-${run}@sdk.example`);
  const page = await contacts.basicApi.getPage(2);
  check('crm.contacts.basicApi.getPage', page.results.length > 0 && page.results.length <= 2);
  const all = await contacts.getAll();
  check('crm.contacts.getAll', all.some((c) => c.id === made.id), `${all.length} contacts`);

  const upserted = await contacts.batchApi.upsert({
    inputs: [
      { id: `js-${run}@sdk.example`, idProperty: 'email', properties: { firstname: 'Up' } },
      { id: `js-${run}-new@sdk.example`, idProperty: 'email', properties: { firstname: 'New' } },
    ],
  });
  check('crm.contacts.batchApi.upsert', upserted.results.length === 2);

  const found = await contacts.searchApi.doSearch({
    filterGroups: [{ filters: [{ propertyName: 'email', operator: 'EQ', value: `js-${run}@sdk.example` }] }],
    properties: ['email', 'firstname'],
    limit: 10,
  });
  check('crm.contacts.searchApi.doSearch', found.total === 1 && found.results[0].properties.firstname === 'Up');

  await contacts.basicApi.archive(made.id);
  let gone = false;
  try {
    await contacts.basicApi.getById(made.id);
  } catch (e) {
    gone = e.code === 404;
  }
  check('crm.contacts.basicApi.archive', gone);

  const pipelines = await client.crm.pipelines.pipelinesApi.getAll('deals');
  check('crm.pipelines.pipelinesApi.getAll', pipelines.results.length > 0 && pipelines.results[0].stages.length > 0);
  const owners = await client.crm.owners.ownersApi.getPage();
  check('crm.owners.ownersApi.getPage', Array.isArray(owners.results), `${owners.results.length} owners`);
  console.log('node sdk: every check passed');
}

main().catch((e) => {
  console.log(`FAIL ${e.code || ''} ${e.message || e}`);
  process.exit(1);
});
