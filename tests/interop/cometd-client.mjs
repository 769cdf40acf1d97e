// The CometD JavaScript client (npm "cometd" with "cometd-nodejs-client"), websocket first.
// Usage: node cometd-client.mjs URL STATE
// Prints "SUBSCRIBED <transport>" once subscribed, then "STATE <json>" for each change,
// and exits 0 after a change to STATE; exits 1 on any failure or after 30 s.
import { adapt } from "cometd-nodejs-client";
import { CometD } from "cometd";

adapt();
const [url, wanted] = process.argv.slice(2);
const fail = (why) => { console.log(`FAILED ${why}`); process.exit(1); };
setTimeout(() => fail("timeout"), 30000);

const cometd = new CometD();
cometd.configure({ url, logLevel: "warn" });
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
