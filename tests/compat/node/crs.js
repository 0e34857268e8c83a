'use strict';
// A client written from the documented wire behaviour of EasyAR's CRS Node SDK
// (docs/easyar-contract-notes.md), on the superagent release that SDK pins (4.1.0),
// so opencrs is exercised by the same HTTP library, headers and quirks.

const crypto = require('crypto');
const request = require('superagent');

// The string every SDK signs: keys sorted, key+value concatenated, secret appended.
function digest(params, secret, algorithm) {
  const text = Object.keys(params)
    .filter((key) => key !== 'signature')
    .sort()
    .map((key) => key + params[key])
    .join('');
  return crypto.createHash(algorithm).update(text + secret).digest('hex');
}

// SDK 4.x: timestamp (ms number), appId and apiKey, SHA-256 under the API secret.
function signByApiKey(params, keys, timestamp) {
  const signed = Object.assign({}, params, {
    timestamp: timestamp === undefined ? new Date().getTime() : timestamp,
    appId: keys.appId,
    apiKey: keys.apiKey,
  });
  signed.signature = digest(signed, keys.apiSecret, 'sha256');
  return signed;
}

// SDK 3.x and lower (signParamsByAppkey): timestamp and appKey, SHA-256 under the app secret.
function signByAppKey(params, keys, timestamp) {
  const signed = Object.assign({}, params, {
    timestamp: timestamp === undefined ? new Date().getTime() : timestamp,
    appKey: keys.appKey,
  });
  signed.signature = digest(signed, keys.appSecret, 'sha256');
  return signed;
}

// The oldest SDK: an ISO `date` and appKey, SHA-1 under the app secret.
function signByDate(params, keys) {
  const signed = Object.assign({}, params, {
    date: new Date().toISOString(),
    appKey: keys.appKey,
  });
  signed.signature = digest(signed, keys.appSecret, 'sha1');
  return signed;
}

const SIGNERS = { apikey: signByApiKey, appkey: signByAppKey, date: signByDate };

// The SDK's success rule: a superagent error or a truthy statusCode rejects, else the body.
function finish(req) {
  return new Promise((resolve, reject) => {
    req.end((err, res) => {
      if (err) {
        reject(err);
      } else if (res.body.statusCode) {
        reject(new Error(JSON.stringify(res.body)));
      } else {
        resolve(res.body);
      }
    });
  });
}

function farmer(host, keys, scheme) {
  const sign = SIGNERS[scheme || 'apikey'];
  const signed = (params) => sign(params || {}, keys);
  return {
    ping: () => finish(request.get(host + '/ping')),
    createTarget: (target) => finish(request.post(host + '/targets/').send(signed(target))),
    similar: (params) => finish(request.post(host + '/similar/').send(signed(params))),
    getTargetsByPage: (pageNum, pageSize) =>
      finish(
        request
          .get(`${host}/targets/infos?pageNum=${pageNum}&pageSize=${pageSize}`)
          .query(signed({ pageNum, pageSize }))
      ),
    getTargets: (limit, last) =>
      finish(request.get(`${host}/targets/?last=${last}&limit=${limit}`).query(signed({ last, limit }))),
    getTargetsCount: () => finish(request.get(host + '/targets/count').query(signed())),
    getTarget: (id) => finish(request.get(`${host}/target/${id}`).query(signed())),
    updateTarget: (id, target) => finish(request.put(`${host}/target/${id}`).send(signed(target))),
    detection: (params) => finish(request.post(host + '/grade/detection/').send(signed(params))),
    tracking: (params) => finish(request.post(host + '/grade/tracking/').send(signed(params))),
    deleteTarget: (id) => finish(request.del(`${host}/target/${id}`).query(signed())),
  };
}

function gateway(host, keys) {
  return {
    search: (params) =>
      finish(request.post(host + '/search').set('Connection', 'keep-alive').send(signByApiKey(params, keys))),
    // Multipart: only the text fields are signed; the image travels as the file part.
    searchWithFile: (image, params) => {
      const fields = signByApiKey(params || {}, keys);
      let req = request.post(host + '/v2/search');
      for (const key of Object.keys(fields)) {
        req = req.field(key, String(fields[key]));
      }
      return finish(req.attach('image', image, 'image.jpg'));
    },
  };
}

module.exports = { digest, signByApiKey, signByAppKey, signByDate, farmer, gateway };
