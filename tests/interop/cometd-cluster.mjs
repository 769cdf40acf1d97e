// The CometD JavaScript client as a UI in front of a servicewatch cluster: it follows the
// changes from one node, and when that node dies it moves to the next one, subscribing with
// the last revision it saw ({ext: {revision}}), as docs/notifications.md tells a UI to.
// Usage: SW_USER=... SW_PASSWORD=... [SW_MOVE_DELAY_MS=...] node cometd-cluster.mjs URL_A URL_B
// Prints "SUBSCRIBED <url>" each time it is subscribed (the second time after moving), then
// "CHANGE <revision> <id> <state>" for each change; exits when stdin closes, 1 on a failure
// or after 60 s.
import { adapt } from "cometd-nodejs-client";
import { CometD } from "cometd";

adapt();
const urls = process.argv.slice(2);
const fail = (why) => { console.log(`FAILED ${why}`); process.exit(1); };
setTimeout(() => fail("timeout"), 60000);
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

const authorization = "Basic " + Buffer.from(`${process.env.SW_USER}:${process.env.SW_PASSWORD}`).toString("base64");
// Each node has its own logins: a cookie per node, sent on that node's WebSocket upgrade.
const cookies = new Map();
async function login(url) {
    const answer = await fetch(url.replace(/\/notifications$/, "/services?fields=id"), { headers: { Authorization: authorization } });
    if (answer.status !== 200) fail(`login ${answer.status} at ${url}`);
    cookies.set(new URL(url).host, answer.headers.getSetCookie().map((c) => c.split(";")[0]).join("; "));
}
const NodeWebSocket = window.WebSocket;
window.WebSocket = class extends NodeWebSocket {
    constructor(address, protocols) {
        super(address, protocols, { headers: { Cookie: cookies.get(new URL(address).host) || "" } });
    }
};

// How long the UI waits before it moves (SW_MOVE_DELAY_MS): long enough, and changes made
// meanwhile reach it only through the revision it presents.
const moveDelay = Number(process.env.SW_MOVE_DELAY_MS || 0);
let revision = null;
let current = null;

async function follow(index) {
    const url = urls[index];
    await login(url);
    const cometd = new CometD();
    current = cometd;
    cometd.configure({ url, logLevel: "warn", requestHeaders: { Authorization: authorization }, maxBackoff: 500 });
    // The node is gone when its connect fails: move on, once, to the next node.
    let moved = false;
    cometd.addListener("/meta/connect", (m) => {
        if (!m.successful && !moved && current === cometd && index + 1 < urls.length) {
            moved = true;
            cometd.getTransport().abort();
            setTimeout(() => follow(index + 1).catch((e) => fail(`move: ${e}`)), moveDelay);
        }
    });
    cometd.handshake((reply) => {
        if (!reply.successful) fail(`handshake ${JSON.stringify(reply)} at ${url}`);
        const props = revision === null ? {} : { ext: { revision } };
        cometd.subscribe("/notifications/services", (message) => {
            if (current !== cometd) return;
            const data = message.data;
            if (data.messageType !== "ServiceStateChangeMessage") fail(`messageType ${data.messageType}`);
            const r = message.ext && message.ext.revision;
            if (typeof r !== "number") fail(`no revision in ${JSON.stringify(message)}`);
            revision = revision === null ? r : Math.max(revision, r);
            console.log(`CHANGE ${r} ${data.service.id} ${data.service.state}`);
        }, props, (sub) => {
            if (!sub.successful) fail(`subscribe ${JSON.stringify(sub)}`);
            console.log(`SUBSCRIBED ${url}`);
        });
    });
}

follow(0).catch((e) => fail(`start: ${e}`));
