// Copyright (c) selfjwt.kyma contributors
// GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
// SPDX-License-Identifier: GPL-3.0-or-later
//
// The command line of the verifiers (verify_jose.mjs, verify_jsonwebtoken.js): one token from
// the arguments, or a batch of cases from stdin; see either verifier for the formats.

'use strict';

const fs = require('fs');

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

// script: the verifier's file name (for the usage text); library and version: what the output
// names; verifyOne(jwksUrl, {token, issuer, audience, algorithms}) resolves to a verdict.
async function runCli({ script, library, version, verifyOne }) {
  const usage = (message) => {
    process.stderr.write(`${message}\nusage: node ${script} --jwks-url URL --issuer ISS --audience AUD `
      + `[--algorithms A,B] TOKEN\n       node ${script} --batch < cases.json\n`);
    process.exit(2);
  };
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
    process.stdout.write(`${JSON.stringify({ library, version, results })}\n`);
    return;
  }
  if (!options.jwksUrl || !options.issuer || !options.audience || !options.token) {
    usage('--jwks-url, --issuer, --audience and a token are required');
  }
  const verdict = await verifyOne(options.jwksUrl, options);
  process.stdout.write(`${JSON.stringify({ library, version, ...verdict })}\n`);
  process.exitCode = verdict.valid ? 0 : 1;
}

module.exports = { parseArgs, runCli };
