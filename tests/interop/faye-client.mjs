// Faye (npm "faye"): handshakes over long-polling, then moves to a WebSocket.
// Usage: SW_USER=... SW_PASSWORD=... node faye-client.mjs URL STATE
// (output as in cometd-client.mjs). The credentials go in the URL, which Faye sends as Basic
// on every transport; it also keeps the session cookie and sends it along.
import faye from "faye";

const [address, wanted] = process.argv.slice(2);
const url = new URL(address);
url.username = encodeURIComponent(process.env.SW_USER);
url.password = encodeURIComponent(process.env.SW_PASSWORD);
const fail = (why) => { console.log(`FAILED ${why}`); process.exit(1); };
setTimeout(() => fail("timeout"), 30000);

const client = new faye.Client(url.toString(), { timeout: 60 });
client.on("transport:down", () => console.log("TRANSPORT down"));
const subscription = client.subscribe("/notifications/services", (data) => {
    if (data.messageType !== "ServiceStateChangeMessage") fail(`messageType ${data.messageType}`);
    console.log(`STATE ${JSON.stringify(data.service)}`);
    if (data.service.state === wanted) {
        client.disconnect();
        process.exit(0);
    }
});
subscription.then(
    () => console.log(`SUBSCRIBED ${(client._dispatcher._transport || {}).connectionType}`),
    (error) => fail(`subscribe ${error && error.message}`),
);
