'use strict';
// node run.js <scenario> <baseUrl> <keys.json>: runs one scenario's calls in order and
// prints {step: outcome} as JSON, where an outcome is what the SDK's promise gave:
// {resolved: body} or {rejected: message, httpStatus, body}.

const fs = require('fs');
const crs = require('./crs');

async function outcome(promise) {
  try {
    return { resolved: await promise };
  } catch (err) {
    let body = err.response ? err.response.body : undefined;
    if (body === undefined) {
      try {
        body = JSON.parse(err.message);
      } catch (ignored) {
        body = null;
      }
    }
    return { rejected: err.message, httpStatus: err.status || null, body };
  }
}

function imageBase64(path) {
  return fs.readFileSync(path).toString('base64');
}

// Every farmer call in the order an app uses them, signed with `scheme`.
async function farmerScenario(base, keys, scheme) {
  const farmer = crs.farmer(base, keys, scheme);
  const out = {};
  const name = `node-${scheme}-${Date.now()}`;
  out.ping = await outcome(farmer.ping());
  out.create = await outcome(
    farmer.createTarget({
      image: imageBase64(keys.images.create),
      name,
      size: '20',
      meta: Buffer.from('{"video":"a.mp4"}').toString('base64'),
      type: 'ImageTarget',
      active: '1',
      allowSimilar: '1',
      egg: 'spam',
    })
  );
  const created = out.create.resolved ? out.create.resolved.result.targetId : 'missing';
  out.get = await outcome(farmer.getTarget(created));
  out.update = await outcome(farmer.updateTarget(created, { name: name + '-renamed', meta: 'bWV0YQ==' }));
  out.list = await outcome(farmer.getTargetsByPage(1, 5));
  out.legacyList = await outcome(farmer.getTargets(10, new Date().getTime()));
  out.count = await outcome(farmer.getTargetsCount());
  out.similar = await outcome(farmer.similar({ image: imageBase64(keys.images.create) }));
  out.detection = await outcome(farmer.detection({ image: imageBase64(keys.images.create) }));
  out.tracking = await outcome(farmer.tracking({ image: imageBase64(keys.images.create) }));
  out.delete = await outcome(farmer.deleteTarget(created));
  out.getDeleted = await outcome(farmer.getTarget(created));
  out.targetId = created;
  return out;
}

async function gatewayScenario(base, keys) {
  const gateway = crs.gateway(base, keys);
  const out = {};
  out.search = await outcome(gateway.search({ image: imageBase64(keys.images.hit) }));
  out.searchMiss = await outcome(gateway.search({ image: imageBase64(keys.images.miss) }));
  out.searchWithFile = await outcome(
    gateway.searchWithFile(fs.readFileSync(keys.images.hit), { notracking: 'true' })
  );
  out.searchWithFileTracking = await outcome(gateway.searchWithFile(fs.readFileSync(keys.images.hit)));
  return out;
}

// A business error must reach the SDK as its envelope, not as superagent's HTTP error.
async function errorScenario(base, keys) {
  const wrong = Object.assign({}, keys, { apiSecret: keys.apiSecret + '-wrong' });
  const stranger = Object.assign({}, keys, { apiKey: 'no-such-api-key' });
  return {
    badSignature: await outcome(crs.farmer(base, wrong).getTargetsByPage(1, 5)),
    unknownKey: await outcome(crs.farmer(base, stranger).getTargetsByPage(1, 5)),
    missingTarget: await outcome(crs.farmer(base, keys).getTarget('00000000-0000-0000-0000-000000000000')),
  };
}

const SCENARIOS = {
  farmer: (base, keys) => farmerScenario(base, keys, 'apikey'),
  'farmer-appkey': (base, keys) => farmerScenario(base, keys, 'appkey'),
  'farmer-date': (base, keys) => farmerScenario(base, keys, 'date'),
  gateway: gatewayScenario,
  errors: errorScenario,
};

async function main() {
  const [scenario, base, keysFile] = process.argv.slice(2);
  const run = SCENARIOS[scenario];
  if (!run || !base || !keysFile) {
    process.stderr.write(`usage: node run.js <${Object.keys(SCENARIOS).join('|')}> <baseUrl> <keys.json>\n`);
    process.exit(2);
  }
  const keys = JSON.parse(fs.readFileSync(keysFile, 'utf8'));
  process.stdout.write(JSON.stringify(await run(base.replace(/\/$/, ''), keys)) + '\n');
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
