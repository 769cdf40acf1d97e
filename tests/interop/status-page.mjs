// Drives servicewatch's status page in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium), as a person at a wall screen would: logs in through the page's form,
// waits for the services and the live link, then does what the test asks on stdin.
// Usage: [NO_WEBSOCKET=1] node status-page.mjs URL USER PASSWORD SCREENSHOT
//   prints   READY <tiles> <link>       logged in, services shown, link live (and how)
//   EXPECT <id> <state>  -> SEEN <id> <state> <ms>   once the tile shows the state
//   SHOT [path]          -> SHOT <path>               a full-page screenshot
//   HISTORY <id>         -> HISTORY <entries>         the tile clicked, its history shown
//   LINK <kind>          -> LINK <kind> <text>        once the link shows <kind> (live, stale)
//   QUIT                 -> PROBLEMS [...] when the page logged errors (a CSP refusal
//                           included), then exits
import { chromium } from "playwright-core";
import readline from "node:readline";

const [url, user, password, shot] = process.argv.slice(2);
const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
    const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
    const page = await context.newPage();
    page.on("console", (m) => {
        console.error(`console ${m.type()}: ${m.text()}`);
        // The page's first look is refused (401) until it logs in, by design; anything
        // else the page logs as an error (a Content-Security-Policy refusal, a script
        // error) is a problem.
        const expected = m.text().includes("status of 401");
        if (m.type() === "error" && !expected) problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(String(e)));
    if (process.env.NO_WEBSOCKET) {
        // A proxy that accepts WebSocket upgrades and drops them at once.
        await page.routeWebSocket(/\/notifications/, (ws) => ws.close());
    }
    await page.goto(url);
    await page.waitForSelector("#login:not([hidden])", { timeout: 15000 });
    await page.fill("#user", user);
    await page.fill("#password", password);
    await page.click("#login button");
    await page.waitForSelector("#link.link-live", { timeout: 15000 });
    if (await page.locator("#login").isVisible()) throw new Error("the login form is still shown");
    const link = await page.locator("#link-text").textContent();
    console.log(`READY ${await page.locator(".service").count()} ${link}`);
    const lines = readline.createInterface({ input: process.stdin });
    for await (const line of lines) {
        const [command, a, b] = line.trim().split(/\s+/);
        if (command === "EXPECT") {
            const started = Date.now();
            await page.waitForFunction(([id, state]) => {
                const tile = document.querySelector(`[data-id="${id}"]`);
                return tile !== null && tile.dataset.state === state;
            }, [a, b], { timeout: 10000, polling: 10 });
            console.log(`SEEN ${a} ${b} ${Date.now() - started}`);
        } else if (command === "SHOT") {
            const path = a || shot;
            await page.screenshot({ path, fullPage: true });
            console.log(`SHOT ${path}`);
        } else if (command === "HISTORY") {
            await page.click(`[data-id="${a}"]`);
            await page.waitForFunction(() => {
                const items = document.querySelectorAll("#history-list li");
                return items.length > 0 && !items[0].textContent.startsWith("loading");
            }, null, { timeout: 10000 });
            console.log(`HISTORY ${await page.locator("#history-list li .when").count()}`);
        } else if (command === "LINK") {
            await page.waitForSelector(`#link.link-${a}`, { timeout: 15000 });
            console.log(`LINK ${a} ${await page.locator("#link-text").textContent()}`);
        } else if (command === "QUIT") {
            break;
        }
    }
} finally {
    if (problems.length) console.log(`PROBLEMS ${JSON.stringify(problems)}`);
    await browser.close();
    process.exit(0);
}
