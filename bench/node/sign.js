// Copyright (c) selfjwt.kyma contributors
// GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later
//
// Benchmark peer of the selfjwt-token refresher: sign the same token with jsonwebtoken
// (the stack of the original article) in a fresh process and print it.
//
//   node sign.js CONFIG_JSON
//
// CONFIG_JSON is the refresher configuration the edge_keys role writes; the key, claims
// and header come from it, kid and alg from the argument list.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const modules = process.env.BENCH_NODE_MODULES;
const jwt = require(path.join(modules, 'jsonwebtoken'));

const [configPath, kid, alg] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const key = fs.readFileSync(config.key.path, 'utf8');
const token = config.token;
const now = Math.floor(Date.now() / 1000);
const payload = {
  iss: token.issuer,
  sub: token.subject,
  iat: now,
  nbf: now + token.not_before,
  exp: now + token.expires_in,
  jti: crypto.randomBytes(16).toString('base64url'),
};
if (token.audience) {
  payload.aud = token.audience;
}
if (token.scopes && token.scopes.length) {
  payload.scope = token.scopes.join(' ');
}
const header = { typ: 'JWT', kid };
if (token.jku) {
  header.jku = token.jku;
}
process.stdout.write(jwt.sign(payload, key, { algorithm: alg, header }) + '\n');
