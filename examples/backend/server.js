// backend: a tiny JSON HTTP service, one of the three apps of the example ecosystem.
//
// Core `http` module only (no npm packages). Each instance answers
//   {"app":"backend","instance":<SUP_INSTANCE>,"pid":<pid>}
// logs one line per request on stdout, and stops gracefully on SIGTERM/SIGINT:
// it stops accepting, lets in-flight requests finish, then exits 0.
//
// Socket: with `listen = [...]` in ecosystem.toml supd binds the port once and every
// instance inherits it as fd 3 (LISTEN_FDS, systemd's socket activation), so all the
// instances share port 3000 and the kernel spreads the connections. Run alone, without
// LISTEN_FDS, it listens on PORT (default 3000) + SUP_INSTANCE itself.
'use strict';

const http = require('http');

// SUP_INSTANCE is supd's; NODE_APP_INSTANCE (also set by supd) is PM2's name for it.
const instance =
  Number.parseInt(process.env.SUP_INSTANCE ?? process.env.NODE_APP_INSTANCE ?? '0', 10) || 0;
const basePort = Number.parseInt(process.env.PORT || '3000', 10);
const inherited =
  process.env.LISTEN_FDS === '1' && process.env.LISTEN_PID === String(process.pid);
// `where` is what server.listen takes: the inherited fd, or a port of our own.
const where = inherited ? { fd: 3 } : { port: basePort + instance };
const port = inherited ? `${basePort} (shared, fd 3)` : basePort + instance;

function log(message) {
  // supd prefixes every line with time and `backend:<instance>`; the pid tells restarts apart.
  console.log(`pid=${process.pid} ${message}`);
}

const server = http.createServer((req, res) => {
  const started = process.hrtime.bigint();
  const body = JSON.stringify({ app: 'backend', instance, pid: process.pid }) + '\n';
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    log(`${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms`);
  });
});

server.on('error', (err) => {
  console.error(`pid=${process.pid} cannot listen on port ${port}: ${err.message}`);
  process.exit(1);
});

server.listen(where, () => {
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
