// Copyright (c) selfjwt.kyma contributors
// GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later
//
// Verify JWTs the way an Express-style Node.js service using `jsonwebtoken` and `jwks-rsa`
// does (the pattern of the jwks-rsa README): jwks-rsa's JwksClient.getSigningKey(kid) finds
// the public key for the token's kid in a JWKS fetched over HTTP, and jsonwebtoken.verify()
// checks it with an explicit algorithm allowlist, issuer and audience.
//
// One token:
//   node verify_jsonwebtoken.js --jwks-url URL --issuer ISS --audience AUD [--algorithms RS256,ES256] TOKEN
//   prints a JSON verdict; exit code 0 = valid, 1 = rejected, 2 = usage error
//
// Many tokens (used by test_interop.py, one Node.js start for all cases):
//   node verify_jsonwebtoken.js --batch < {"jwks_url": URL, "cases": [{"id", "token", "issuer", "audience", "algorithms"}]}
//   prints {"library", "version", "results": {id: verdict}}; exit code 0 unless the input is unusable
//
// A verdict is {"valid": true, "header": {...}, "claims": {...}} or
// {"valid": false, "error": <error class name>, "message": ...}.
//
// jsonwebtoken 9 has no EdDSA: its algorithm table (jwa) knows RS*, PS*, ES* and HS* only, and
// it refuses Ed25519 keys ('Unknown key type "ed25519".'). jwks-rsa 4 does serve OKP keys.

'use strict';

const fs = require('fs');
const path = require('path');
const jwt = require('jsonwebtoken');
const { JwksClient } = require('jwks-rsa');

const DEFAULT_ALGORITHMS = ['RS256', 'ES256'];

function version(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch (err) {
    return null;
  }
}

function verifyOne(jwksUrl, { token, issuer, audience, algorithms }) {
  // A fresh client for every case, so that one case's cached keys do not influence another.
  const client = new JwksClient({ jwksUri: jwksUrl, cache: false, rateLimit: false, timeout: 5000 });
  const getKey = (header, callback) => {
    client.getSigningKey(header.kid).then(
      (key) => callback(null, key.getPublicKey()),
      (err) => callback(err),
    );
  };
  return new Promise((resolve) => {
    jwt.verify(token, getKey, {
      algorithms: algorithms && algorithms.length ? algorithms : DEFAULT_ALGORITHMS,
      issuer,
      audience,
      clockTolerance: 0,
      complete: true,
    }, (err, decoded) => {
      if (err) {
        const header = (jwt.decode(token, { complete: true }) || {}).header || null;
        resolve({ valid: false, error: err.name || err.constructor.name, message: String(err.message || err), header });
      } else {
        resolve({ valid: true, header: decoded.header, claims: decoded.payload });
      }
    });
  });
}

function parseArgs(argv) {
  const options = { algorithms: [] };
  const rest = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--batch') options.batch = true;
    else if (arg === '--jwks-url') options.jwksUrl = argv[(i += 1)];
    else if (arg === '--issuer') options.issuer = argv[(i += 1)];
    else if (arg === '--audience') options.audience = argv[(i += 1)];
    else if (arg === '--algorithms') options.algorithms = String(argv[(i += 1)] || '').split(',').filter(Boolean);
    else rest.push(arg);
  }
  options.token = rest[0];
  return options;
}

function usage(message) {
  process.stderr.write(`${message}\nusage: node verify_jsonwebtoken.js --jwks-url URL --issuer ISS --audience AUD `
    + '[--algorithms A,B] TOKEN\n       node verify_jsonwebtoken.js --batch < cases.json\n');
  process.exit(2);
}

const VERSIONS = { jsonwebtoken: version('jsonwebtoken'), 'jwks-rsa': version('jwks-rsa') };

async function main() {
  const options = parseArgs(process.argv.slice(2));
  if (options.batch) {
    let input;
    try {
      input = JSON.parse(fs.readFileSync(0, 'utf8'));
    } catch (err) {
      usage(`the batch input on stdin is not JSON: ${err.message}`);
    }
    if (!input || typeof input.jwks_url !== 'string' || !Array.isArray(input.cases)) {
      usage('the batch input needs "jwks_url" (string) and "cases" (list)');
    }
    const results = {};
    for (const item of input.cases) {
      results[item.id] = await verifyOne(input.jwks_url, item);
    }
    process.stdout.write(`${JSON.stringify({ library: 'jsonwebtoken+jwks-rsa', version: VERSIONS, results })}\n`);
    return;
  }
  if (!options.jwksUrl || !options.issuer || !options.audience || !options.token) {
    usage('--jwks-url, --issuer, --audience and a token are required');
  }
  const verdict = await verifyOne(options.jwksUrl, options);
  process.stdout.write(`${JSON.stringify({ library: 'jsonwebtoken+jwks-rsa', version: VERSIONS, ...verdict })}\n`);
  process.exitCode = verdict.valid ? 0 : 1;
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(2);
});
