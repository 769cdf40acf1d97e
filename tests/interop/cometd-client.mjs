// The CometD JavaScript client (npm "cometd" with "cometd-nodejs-client"), websocket first.
// Usage: SW_USER=... SW_PASSWORD=... node cometd-client.mjs URL STATE
// Logs in the way a browser page does: one request with Basic credentials sets the session
// cookie, and the WebSocket upgrade carries that cookie (browsers cannot put an
// Authorization header on a WebSocket). Long-polling, should it be used, sends Basic.
// Prints "SUBSCRIBED <transport>" once subscribed, then "STATE <json>" for each change,
// and exits 0 after a change to STATE; exits 1 on any failure or after 30 s.
import { adapt } from "cometd-nodejs-client";
import { CometD } from "cometd";

adapt();
const [url, wanted] = process.argv.slice(2);
const fail = (why) => { console.log(`FAILED ${why}`); process.exit(1); };
setTimeout(() => fail("timeout"), 30000);

const authorization = "Basic " + Buffer.from(`${process.env.SW_USER}:${process.env.SW_PASSWORD}`).toString("base64");
const login = await fetch(url.replace(/\/notifications$/, "/services?fields=id"), { headers: { Authorization: authorization } });
if (login.status !== 200) fail(`login ${login.status}`);
const cookie = login.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
if (!cookie) fail("no session cookie");
const NodeWebSocket = window.WebSocket;
window.WebSocket = class extends NodeWebSocket {
    constructor(address, protocols) {
        super(address, protocols, { headers: { Cookie: cookie } });
    }
};

const cometd = new CometD();
cometd.configure({ url, logLevel: "warn", requestHeaders: { Authorization: authorization } });
cometd.addListener("/meta/unsuccessful", (m) => fail(`unsuccessful ${JSON.stringify(m)}`));
cometd.handshake((reply) => {
    if (!reply.successful) fail(`handshake ${JSON.stringify(reply)}`);
    cometd.subscribe("/notifications/services", (message) => {
        const data = message.data;
        if (data.messageType !== "ServiceStateChangeMessage") fail(`messageType ${data.messageType}`);
        console.log(`STATE ${JSON.stringify(data.service)}`);
        if (data.service.state === wanted) {
            cometd.disconnect(() => process.exit(0));
        }
    }, (sub) => {
        if (!sub.successful) fail(`subscribe ${JSON.stringify(sub)}`);
        console.log(`SUBSCRIBED ${cometd.getTransport().type}`);
    });
});
