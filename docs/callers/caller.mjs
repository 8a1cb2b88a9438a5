// Call an API protected by selfjwt.kyma with the token that the edge host's refresher keeps fresh.
//   SELFJWT_TOKEN_FILE=/var/lib/selfjwt/token node caller.mjs URL [URL ...]     (Node.js 18+)
// Prints each response body; on an error prints what to do on stderr and exits 1.
import { readFileSync } from "node:fs";

const TOKEN_FILE = process.env.SELFJWT_TOKEN_FILE || "/var/lib/selfjwt/token";

class CallerError extends Error {}

function readToken() {
  // Read the file for every call, never once per process: the refresher replaces the token
  // before it expires and when the key rotates, so a kept token expires or names a retired key.
  let token;
  try {
    token = readFileSync(TOKEN_FILE, "ascii").trim();
  } catch (err) {
    if (err.code === "ENOENT") {
      throw new CallerError(`token file ${TOKEN_FILE} does not exist: run the selfjwt.kyma.edge_keys role ` +
        "on this host or set SELFJWT_TOKEN_FILE");
    }
    throw new CallerError(`cannot read token file ${TOKEN_FILE} (${err.code || err.message}): this user must be ` +
      "in the token file's group (edge_keys_token_group)");
  }
  if (!token) {
    throw new CallerError(`token file ${TOKEN_FILE} is empty: run selfjwt-token as the key's owner`);
  }
  return token;
}

async function get(url, token) {
  try {
    // No redirects: the token would go on to wherever the redirect points.
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${token}` },
      redirect: "manual",
      signal: AbortSignal.timeout(30000),
    });
    return { status: response.status, body: await response.text() };
  } catch (err) {
    throw new CallerError(`cannot reach ${url}: ${err.cause?.message ?? err.message}`);
  }
}

async function call(url) {
  const token = readToken();
  let { status, body } = await get(url, token);
  if (status === 401) {
    const fresh = readToken();
    if (fresh !== token) {
      // The refresher replaced the token after it was read: retry once with the new one.
      ({ status, body } = await get(url, fresh));
    }
  }
  const text = body.trim().slice(0, 200);
  if (status === 401) {
    throw new CallerError(`${url} answered 401 (${text}): the token in ${TOKEN_FILE} is expired or its key is ` +
      "not published; check that the refresher runs (selfjwt-token --json)");
  }
  if (status === 403) {
    throw new CallerError(`${url} answered 403 (${text}): the token is valid but the API's rules do not allow ` +
      "this call (audience, scopes, path or method)");
  }
  if (status < 200 || status >= 300) {
    throw new CallerError(`${url} answered ${status} (${text})`);
  }
  return body;
}

async function main(urls) {
  if (urls.length === 0) {
    console.error("usage: node caller.mjs URL [URL ...]");
    return 2;
  }
  try {
    for (const url of urls) {
      console.log(await call(url));
    }
  } catch (err) {
    if (!(err instanceof CallerError)) throw err;
    console.error(`caller: ${err.message}`);
    return 1;
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
