// Faye (npm "faye"): handshakes over long-polling, then moves to a WebSocket.
// Usage: node faye-client.mjs URL STATE   (output as in cometd-client.mjs)
import faye from "faye";

const [url, wanted] = process.argv.slice(2);
const fail = (why) => { console.log(`FAILED ${why}`); process.exit(1); };
setTimeout(() => fail("timeout"), 30000);

const client = new faye.Client(url, { timeout: 60 });
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
