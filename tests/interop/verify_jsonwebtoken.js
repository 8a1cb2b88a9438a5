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

const { runCli } = require('./verify_cli.cjs');

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

const VERSIONS = { jsonwebtoken: version('jsonwebtoken'), 'jwks-rsa': version('jwks-rsa') };

runCli({ script: 'verify_jsonwebtoken.js', library: 'jsonwebtoken+jwks-rsa', version: VERSIONS, verifyOne })
  .catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(2);
  });
