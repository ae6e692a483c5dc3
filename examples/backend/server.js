// backend: a tiny JSON HTTP service, one of the three apps of the example ecosystem.
//
// Core `http` module only (no npm packages). Each instance answers
//   {"app":"backend","instance":<SUP_INSTANCE>,"pid":<pid>}
// logs one line per request on stdout, and stops gracefully on SIGTERM/SIGINT:
// it stops accepting, lets in-flight requests finish, then exits 0.
//
// Port: PORT (default 3000) + SUP_INSTANCE (default 0), so instance 0 listens on 3000,
// instance 1 on 3001, and so on. This is a stopgap: a later feature lets supd bind one
// listening socket (`listen = [...]` in ecosystem.toml) and hand it to every instance,
// so they all share port 3000; then this file will take the inherited fd (LISTEN_FDS).
'use strict';

const http = require('http');

// SUP_INSTANCE is supd's; NODE_APP_INSTANCE (also set by supd) is PM2's name for it.
const instance =
  Number.parseInt(process.env.SUP_INSTANCE ?? process.env.NODE_APP_INSTANCE ?? '0', 10) || 0;
const basePort = Number.parseInt(process.env.PORT || '3000', 10);
const port = basePort + instance;

function log(message) {
  // supd prefixes every line with time and `backend:<instance>`; the pid tells restarts apart.
  console.log(`pid=${process.pid} ${message}`);
}

const server = http.createServer((req, res) => {
  const started = process.hrtime.bigint();
  const body = JSON.stringify({ app: 'backend', instance, pid: process.pid });
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body + '\n');
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    log(`${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms`);
  });
});

server.on('error', (err) => {
  console.error(`pid=${process.pid} cannot listen on port ${port}: ${err.message}`);
  process.exit(1);
});

server.listen(port, () => {
  log(`instance ${instance} listening on port ${port} (NODE_ENV=${process.env.NODE_ENV || 'unset'})`);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: closing`);
  // close() waits for open connections; idle keep-alive ones would hold it up to
  // the keep-alive timeout, so drop those now (Node >= 18.2).
  server.close(() => {
    log('closed, exiting');
    process.exit(0);
  });
  if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
