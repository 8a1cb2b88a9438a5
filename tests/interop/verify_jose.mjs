// Copyright (c) selfjwt.kyma contributors
// GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later
//
// Verify JWTs the way a Node.js service using `jose` (panva/jose) does: the keys come from a
// JWKS fetched over HTTP with createRemoteJWKSet(), and jwtVerify() checks the signature,
// the algorithm allowlist, exp/nbf, iss and aud.
//
// One token:
//   node verify_jose.mjs --jwks-url URL --issuer ISS --audience AUD [--algorithms RS256,ES256,EdDSA] TOKEN
//   prints a JSON verdict; exit code 0 = valid, 1 = rejected, 2 = usage error
//
// Many tokens (used by test_interop.py, one Node.js start for all cases):
//   node verify_jose.mjs --batch < {"jwks_url": URL, "cases": [{"id", "token", "issuer", "audience", "algorithms"}]}
//   prints {"library", "version", "results": {id: verdict}}; exit code 0 unless the input is unusable
//
// A verdict is {"valid": true, "header": {...}, "claims": {...}} or
// {"valid": false, "error": <class name>, "code": <jose error code>, "claim": <claim name or null>, "message": ...}.

import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

import cli from './verify_cli.cjs';

const { runCli } = cli;

const DEFAULT_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];

function version() {
  const path = new URL('./node_modules/jose/package.json', import.meta.url);
  try {
    return JSON.parse(readFileSync(path, 'utf8')).version;
  } catch {
    return null;
  }
}

export async function verifyOne(jwksUrl, { token, issuer, audience, algorithms }) {
  // A fresh key set for every case, so that one case's cached keys do not influence another.
  const jwks = createRemoteJWKSet(new URL(jwksUrl), { timeoutDuration: 5000, cooldownDuration: 0 });
  try {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer,
      audience,
      algorithms: algorithms && algorithms.length ? algorithms : DEFAULT_ALGORITHMS,
      clockTolerance: 0,
    });
    return { valid: true, header: protectedHeader, claims: payload };
  } catch (err) {
    let header = null;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      // not even a header: the verdict says so through the error
    }
    return {
      valid: false,
      error: err && err.constructor ? err.constructor.name : String(err),
      code: (err && err.code) || null,
      claim: (err && err.claim) || null,
      message: String((err && err.message) || err),
      header,
    };
  }
}

await runCli({ script: 'verify_jose.mjs', library: 'jose', version: version(), verifyOne });
