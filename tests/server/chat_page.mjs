// The chat page in headless Chromium: load GET / from a live server, type a
// message, press Send, wait for the streamed reply to finish, compare it
// with the same conversation through the API, and keep a screenshot.
// Drives Chromium over its DevTools protocol (node's WebSocket; no packages).
// usage: node --experimental-websocket chat_page.mjs BASE_URL EXPECTED_REPLY_FILE SCREENSHOT.png PROFILE_DIR
import { spawn } from "node:child_process";
import fs from "node:fs";

const [base, expectedPath, screenshot, profile] = process.argv.slice(2);
const expected = fs.readFileSync(expectedPath, "utf8");
const browser = spawn("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--remote-debugging-port=0", `--user-data-dir=${profile}`, "--window-size=900,700", "about:blank"],
  { stdio: ["ignore", "ignore", "pipe"] });
const fail = (msg) => { console.log(`FAIL: ${msg}`); browser.kill(); process.exit(1); };
setTimeout(() => fail("timed out"), 90000).unref();

const wsUrl = await new Promise((resolve) => {
  let err = "";
  browser.stderr.on("data", (d) => {
    err += d;
    const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  browser.on("exit", (code) => fail(`chromium exited ${code}: ${err.slice(-500)}`));
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

for (let i = 0; i < 100 && (await evaluate("document.readyState")) !== "complete"; i++) await sleep(100);
for (let i = 0; i < 100 && !(await evaluate("document.getElementById('model').textContent")); i++) await sleep(100);
await evaluate(`document.getElementById('max').value = '64';
  document.getElementById('input').value = 'Tell me a story.';
  document.getElementById('send').click(); true`);
const seen = new Set();
let state = null;
for (let i = 0; i < 600; i++) {
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
await send("Browser.close").catch(() => {});
browser.kill();
process.exit(failed ? 1 : 0);
