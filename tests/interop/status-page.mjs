// Drives servicewatch's status page in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium), as a person at a wall screen would: logs in through the page's form
// (or, with USER "-", opens a display link that logs in by itself), waits for the services
// and the live link, then does what the test asks on stdin.
// Usage: [NO_WEBSOCKET=1] node status-page.mjs URL USER PASSWORD SCREENSHOT [WIDTHxHEIGHT]
//   prints   READY <tiles> <link>       logged in, services shown, link live (and how)
//   EXPECT <id> <state>  -> SEEN <id> <state> <ms>   once the tile shows the state
//   TEXT <id> <words...> -> TEXT <id> <tile text>     once the tile's text holds the words
//   SHOT [path]          -> SHOT <path>               a screenshot of the screen
//   HISTORY <id>         -> HISTORY <entries>         the tile clicked, its detail shown
//   SERVERS              -> SERVERS <a | b>           the open detail's servers
//   CLOSE                -> CLOSE <ringed>            the detail closed with its button;
//                                                     what shows a focus ring, or none
//   LINK <kind>          -> LINK <kind> <text>        once the link shows <kind> (live, stale,
//                                                     offline)
//   DIMMED               -> DIMMED <banner> | <as of of the first tile> | <tile filter>
//                           once the page says its states may be behind
//   LOGIN                -> LOGIN <error text>        once the login form is shown
//   VIEWPORT <w> <h>     -> LAYOUT <json>             resized; how the tiles fill it
//   LAYOUT               -> LAYOUT <json>             tiles, columns, the share of the
//                           screen they cover, the smallest text, names broken mid-word
//   URL                  -> URL <url>                 what the address bar shows
//   AXE                  -> AXE <json>                axe-core's serious and critical
//                                                     violations (an empty list when none)
//   QUIT                 -> PROBLEMS [...] when the page logged errors (a CSP refusal
//                           included), then exits
import { chromium } from "playwright-core";
import readline from "node:readline";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const [url, user, password, shot, size] = process.argv.slice(2);
const [width, height] = (size || "1600x900").split("x").map(Number);
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
    const context = await browser.newContext({ viewport: { width, height } });
    const page = await context.newPage();
    page.on("console", (m) => {
        console.error(`console ${m.type()}: ${m.text()}`);
        // The page's first look is refused (401) until it logs in, and a restarted
        // servicewatch refuses the old cookie and is out of reach for a while: the page
        // handles both, by design. Anything else logged as an error (a
        // Content-Security-Policy refusal, a script error) is a problem.
        // 403 and 404 are judged by their address below: availability is 404 where no
        // history is kept, the instance detail 403 for an agent.
        const expected = /status of (401|403|404|503)|ERR_CONNECTION_REFUSED|WebSocket connection to/.test(m.text());
        if (m.type() === "error" && !expected) problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(String(e)));
    page.on("response", (r) => {
        if (r.status() === 404 && !/\/availability(\?|$)/.test(r.url())) problems.push(`404 for ${r.url()}`);
        if (r.status() === 403 && !/\/instances$/.test(r.url())) problems.push(`403 for ${r.url()}`);
    });
    if (process.env.NO_WEBSOCKET) {
        // A proxy that accepts WebSocket upgrades and drops them at once.
        await page.routeWebSocket(/\/notifications/, (ws) => ws.close());
    }
    await page.goto(url);
    if (user !== "-") {
        await page.waitForSelector("#login:not([hidden])", { timeout: 15000 });
        await page.fill("#user", user);
        await page.fill("#password", password);
        await page.click("#login button");
    }
    await page.waitForSelector("#link.link-live", { timeout: 15000 });
    if (await page.locator("#login").isVisible()) throw new Error("the login form is still shown");
    const link = await page.locator("#link-text").textContent();
    console.log(`READY ${await page.locator(".service").count()} ${link}`);
    const lines = readline.createInterface({ input: process.stdin });
    for await (const line of lines) {
        const [command, a, b, ...rest] = line.trim().split(/\s+/);
        if (command === "EXPECT") {
            const started = Date.now();
            await page.waitForFunction(([id, state]) => {
                const tile = document.querySelector(`.service[data-id="${id}"]`);
                return tile !== null && tile.dataset.state === state;
            }, [a, b], { timeout: 10000, polling: 10 });
            console.log(`SEEN ${a} ${b} ${Date.now() - started}`);
        } else if (command === "TEXT") {
            const words = [b, ...rest].join(" ");
            const text = await page.waitForFunction(([id, words]) => {
                const tile = document.querySelector(`.service[data-id="${id}"]`);
                const text = tile ? tile.innerText.replace(/\s+/g, " ").trim() : "";
                return text.includes(words) ? text : false;
            }, [a, words], { timeout: 15000, polling: 50 });
            console.log(`TEXT ${a} ${await text.jsonValue()}`);
        } else if (command === "SHOT") {
            const path = a || shot;
            await page.screenshot({ path });
            console.log(`SHOT ${path}`);
        } else if (command === "HISTORY") {
            await page.click(`.service[data-id="${a}"] .tile`);
            await page.waitForFunction(() => {
                const items = document.querySelectorAll("#detail-history li");
                return items.length > 0 && !items[0].textContent.startsWith("loading");
            }, null, { timeout: 10000 });
            console.log(`HISTORY ${await page.locator("#detail-history li .when").count()}`);
        } else if (command === "CLOSE") {
            await page.click("#detail-close");
            await page.waitForSelector("#detail:not([open])", { state: "attached", timeout: 5000 });
            const ring = await page.evaluate(() => {
                const focused = document.activeElement;
                return focused && focused.matches(":focus-visible") ? focused.className : "none";
            });
            console.log(`CLOSE ${ring}`);
        } else if (command === "LINK") {
            await page.waitForSelector(`#link.link-${a}`, { timeout: 15000 });
            console.log(`LINK ${a} ${await page.locator("#link-text").textContent()}`);
        } else if (command === "DIMMED") {
            await page.waitForSelector("body.behind #banner:not([hidden])", { timeout: 15000 });
            const seen = await page.evaluate(() => {
                const first = document.querySelector(".service");
                return [document.querySelector("#banner").innerText.replace(/\s+/g, " ").trim(),
                    first.querySelector(".asof").innerText.trim(), getComputedStyle(first).filter];
            });
            console.log(`DIMMED ${seen.join(" | ")}`);
        } else if (command === "LOGIN") {
            await page.waitForSelector("#login:not([hidden])", { timeout: 15000 });
            const tiles = await page.locator(".service").count();
            console.log(`LOGIN ${tiles} ${await page.locator("#login-error").textContent()}`);
        } else if (command === "VIEWPORT" || command === "LAYOUT") {
            if (command === "VIEWPORT") {
                await page.setViewportSize({ width: Number(a), height: Number(b) });
                // The page lays out again shortly after a resize, and says for which size.
                await page.waitForSelector(`.services[data-laid-out="${a}x${b}"]`, { timeout: 5000 });
            }
            console.log(`LAYOUT ${JSON.stringify(await page.evaluate(measure))}`);
        } else if (command === "AXE") {
            await page.evaluate(axeSource);
            const found = await page.evaluate(async () => {
                const result = await window.axe.run(document, { resultTypes: ["violations"] });
                return result.violations
                    .filter((v) => v.impact === "serious" || v.impact === "critical")
                    .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
            });
            console.log(`AXE ${JSON.stringify(found)}`);
        } else if (command === "SERVERS") {
            // The open detail's servers, once everything it asked has answered.
            await page.waitForSelector("#detail[data-loaded]", { timeout: 10000 });
            const items = await page.locator("#detail-servers li").allTextContents();
            console.log(`SERVERS ${items.join(" | ")}`);
        } else if (command === "URL") {
            console.log(`URL ${page.url()}`);
        } else if (command === "QUIT") {
            break;
        }
    }
} finally {
    if (problems.length) console.log(`PROBLEMS ${JSON.stringify(problems)}`);
    await browser.close();
    process.exit(0);
}

// How the tiles fill the screen: their number, the columns, the share of the screen's
// area (below the header) that their bounding box covers, the smallest font of a tile's
// name or state, the tiles whose name is cut inside a word (a CamelCase name may break
// between its words), and whether the page scrolls.
function measure() {
    const tiles = [...document.querySelectorAll(".service")];
    const boxes = tiles.map((t) => t.getBoundingClientRect());
    const top = Math.min(...boxes.map((b) => b.top)), bottom = Math.max(...boxes.map((b) => b.bottom));
    const left = Math.min(...boxes.map((b) => b.left)), right = Math.max(...boxes.map((b) => b.right));
    const screen = document.documentElement.clientWidth * (window.innerHeight - top);
    const fonts = tiles.flatMap((t) => [...t.querySelectorAll(".name, .state")]
        .map((e) => parseFloat(getComputedStyle(e).fontSize)));
    // A name is cut inside a word when a line of it ends amid letters.
    const broken = tiles.filter((t) => {
        const name = t.querySelector(".name");
        const text = name.textContent;
        // Each word is measured by its own rectangles: on more than one line, it is cut.
        // Words: between spaces, "_", ".", "-", "/", and the words of a CamelCase name.
        for (const word of text.split(/[\s_.\-/]+|(?<=[a-z])(?=[A-Z])/)) {
            if (!word) continue;
            const at = text.indexOf(word);
            const r = document.createRange();
            const walker = document.createTreeWalker(name, NodeFilter.SHOW_TEXT);
            let offset = 0, node;
            while ((node = walker.nextNode())) {
                const end = offset + node.textContent.length;
                if (at >= offset && at + word.length <= end) {
                    r.setStart(node, at - offset);
                    r.setEnd(node, at - offset + word.length);
                    const lines = new Set([...r.getClientRects()].map((x) => Math.round(x.top)));
                    if (lines.size > 1) return true;
                }
                offset = end;
            }
        }
        return false;
    }).map((t) => t.dataset.id);
    return {
        tiles: tiles.length,
        columns: Number(getComputedStyle(document.querySelector(".services")).gridTemplateColumns.split(" ").length),
        covered: Math.round(((right - left) * Math.min(bottom - top, window.innerHeight - top)) / screen * 100) / 100,
        smallestFont: Math.min(...fonts),
        brokenNames: broken,
        scrolls: document.documentElement.scrollHeight > window.innerHeight + 1,
    };
}
