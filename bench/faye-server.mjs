// The reference server of benches/fanout.rs: Faye's own Node.js Bayeux server
// (faye.NodeAdapter), mounted where servicewatch serves notifications, so that the bench's
// subscribers connect to both the same way.
//
// stdin, one line each: first the resource of the flipping service as servicewatch served
// it (JSON); then a state ("Active", "Inactive") per change, which this publishes on
// /notifications/services as a ServiceStateChangeMessage carrying that resource with the
// new state and `stateSince` set to now: the same bytes, give or take the time stamp.
// stdout: "listening on PORT" once ready. Ends when stdin closes.
//
// Faye is the one installed for the interop tests (bash tests/interop/setup.sh).
import http from 'node:http';
import readline from 'node:readline';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/interop/package.json', import.meta.url));
const faye = require('faye');

const bayeux = new faye.NodeAdapter({ mount: '/api/v2/notifications', timeout: 30 });
const server = http.createServer();
bayeux.attach(server);
server.listen(0, '127.0.0.1', () => console.log(`listening on ${server.address().port}`));

let resource = null;
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (resource === null) {
    resource = JSON.parse(line);
    return;
  }
  const service = { ...resource, state: line.trim(), stateSince: new Date().toISOString() };
  bayeux.getClient().publish('/notifications/services', {
    messageType: 'ServiceStateChangeMessage',
    service,
  });
});
lines.on('close', () => process.exit(0));
