// The chat page in headless Chromium: load GET / from a live server, type a
// message, press Send, wait for the streamed reply to finish, compare it
// with the same conversation through the API, and keep a screenshot.
// Drives Chromium over its DevTools protocol (node's WebSocket; no packages).
// usage: node --experimental-websocket chat_page.mjs BASE_URL EXPECTED_REPLY_FILE SCREENSHOT.png PROFILE_DIR
import { spawn } from "node:child_process";
import fs from "node:fs";

const [base, expectedPath, screenshot, profile] = process.argv.slice(2);
const expected = fs.readFileSync(expectedPath, "utf8");
// --disable-dev-shm-usage: containers often give /dev/shm 64 MiB, too
// little for Chromium's shared memory, and tabs then crash under load.
const browser = spawn("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-dev-shm-usage", "--remote-debugging-port=0", `--user-data-dir=${profile}`, "--window-size=900,700", "about:blank"],
  { stdio: ["ignore", "ignore", "pipe"] });
const fail = (msg) => { console.log(`FAIL: ${msg}`); browser.kill(); process.exit(1); };
setTimeout(() => fail("timed out"), 120000).unref(); // over all the waits below
// Without a D-Bus session Chromium logs D-Bus errors on every start; they
// are harmless and would hide the lines that say why it stopped.
const tail = (err) => err.split("\n").filter((l) => !/dbus/i.test(l)).join("\n").slice(-1500);
let browserErr = "";
const exitedEarly = (code, signal) => fail(`chromium exited ${code ?? signal}: ${tail(browserErr)}`);
browser.on("exit", exitedEarly);

const wsUrl = await new Promise((resolve) => {
  browser.stderr.on("data", (d) => {
    browserErr += d;
    const m = browserErr.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
});
const ws = new WebSocket(wsUrl);
await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
let nextId = 1;
const pending = new Map();
ws.onmessage = (ev) => {
  const msg = JSON.parse(ev.data);
  if (msg.id && pending.has(msg.id)) {
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
  }
};
const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
  const id = nextId++;
  pending.set(id, { resolve, reject });
  ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
});

const { targetId } = await send("Target.createTarget", { url: `${base}/` });
const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
const evaluate = async (expression) =>
  (await send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true }, sessionId)).result.value;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Waits are bounded by time, not by a number of polls: on a loaded machine
// each poll (a round trip to the page) takes longer.
const waitFor = async (what, expression, ms) => {
  for (const end = Date.now() + ms; !(await evaluate(expression));) {
    if (Date.now() > end) fail(`${what} within ${ms / 1000} s`);
    await sleep(50);
  }
};
await waitFor("the page did not load", "document.readyState === 'complete'", 20000);
await waitFor("the page did not show the model", "!!document.getElementById('model').textContent", 20000);
await evaluate(`document.getElementById('max').value = '64';
  document.getElementById('input').value = 'Tell me a story.';
  document.getElementById('send').click(); true`);
const seen = new Set();
let state = null;
for (const end = Date.now() + 45000; Date.now() < end;) {
  state = await evaluate(`(() => { const r = document.getElementById('reply-1');
    return r ? { text: r.textContent, done: r.dataset.done === '1', cls: r.className } : null; })()`);
  if (state) seen.add(state.text);
  if (state && state.done) break;
  await sleep(25);
}
const shot = await send("Page.captureScreenshot", { format: "png" }, sessionId);
fs.writeFileSync(screenshot, Buffer.from(shot.data, "base64"));
let failed = 0;
const check = (cond, what, detail) => { if (!cond) { failed++; console.log(`FAIL: ${what}`, JSON.stringify(detail)); } };
check(state && state.done && state.cls === "msg assistant", "the reply finished without error", state);
check(state && state.text.length > 0 && state.text === expected, "the reply is the API's reply", [state && state.text, expected]);
check(await evaluate("document.querySelector('.msg.user').textContent") === "Tell me a story.", "the user message shows");
check(fs.statSync(screenshot).size > 1000, "a screenshot was written");
console.log(`reply ${JSON.stringify(state && state.text)}; ${seen.size} distinct states seen while streaming; ` +
            `screenshot ${screenshot}`);
// From here Chromium exiting is what we asked for. Node may see the exit
// before the reply to Browser.close when it gets the CPU late, so the
// early-exit handler goes first.
browser.off("exit", exitedEarly);
const exited = new Promise((resolve) => browser.once("exit", resolve));
await Promise.race([send("Browser.close").catch(() => {}), exited]);
browser.kill();
process.exit(failed ? 1 : 0);
