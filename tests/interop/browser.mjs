// Drives headless Chromium (playwright-core, Debian's /usr/bin/chromium) through pages the
// test serves, in one browser context, so that cookies set by one page are there for the
// next. Each page reports by setting document.title to "DONE <result>".
// Usage: node browser.mjs URL...   Prints "PAGE <url> <result>" per page, in order.
import { chromium } from "playwright-core";

const urls = process.argv.slice(2);
const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
    const context = await browser.newContext();
    for (const url of urls) {
        const page = await context.newPage();
        page.on("console", (m) => console.error(`console ${url}: ${m.text()}`));
        await page.goto(url);
        await page.waitForFunction(() => document.title.startsWith("DONE "), null, { timeout: 20000 });
        console.log(`PAGE ${url} ${(await page.title()).slice(5)}`);
        await page.close();
    }
} finally {
    await browser.close();
}
