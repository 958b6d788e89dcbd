// The official openai npm client against llmrt serve: completions and chat,
// streaming and not, text compared with `llmrt run` under the same settings
// (expected texts come from the shell script in EXPECT, a JSON file).
// usage: node openai_client.mjs BASE_URL EXPECT.json
import fs from "node:fs";
import OpenAI from "openai";

const [baseURL, expectPath] = process.argv.slice(2);
const expect = JSON.parse(fs.readFileSync(expectPath, "utf8"));
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
let failed = 0, passed = 0;
function check(cond, what, detail) {
  if (cond) passed++;
  else { failed++; console.log(`FAIL: ${what}`, detail === undefined ? "" : JSON.stringify(detail)); }
}

const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === "demo", "models.list", models.data);

// completions: greedy and seeded sampling, as llmrt run
for (const [name, params] of Object.entries({ greedy: { temperature: 0 }, seeded: { temperature: 0.8, seed: 42 } })) {
  const r = await client.completions.create({ model: "demo", prompt: expect.prompt, max_tokens: 12, ...params });
  check(r.object === "text_completion" && r.choices[0].text === expect[`completion_${name}`],
        `completions.create ${name} = llmrt run`, [r.choices[0].text, expect[`completion_${name}`]]);
  check(r.usage.completion_tokens === 12, `completions usage ${name}`, r.usage);
  const stream = await client.completions.create({ model: "demo", prompt: expect.prompt, max_tokens: 12, stream: true, ...params });
  let text = "", finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) { text += c.text; if (c.finish_reason) finish = c.finish_reason; }
  }
  check(text === expect[`completion_${name}`] && finish === "length", `completions stream ${name} = llmrt run`, [text, finish]);
}

// chat: the demo model has no chat template, so the server renders
// "role: content" lines and "assistant:"; llmrt run gets that text
const messages = [{ role: "user", content: expect.chat_user }];
const chat = await client.chat.completions.create({ model: "demo", messages, max_tokens: 12, temperature: 0 });
check(chat.object === "chat.completion" && chat.choices[0].message.role === "assistant" &&
      chat.choices[0].message.content === expect.chat, "chat.completions.create = llmrt run",
      [chat.choices[0].message.content, expect.chat]);
const chatStream = await client.chat.completions.create({
  model: "demo", messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
let chatText = "", usage = null, role = null;
for await (const chunk of chatStream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) { chatText += c.delta.content ?? ""; role ??= c.delta.role; }
}
check(chatText === expect.chat && role === "assistant", "chat stream = llmrt run", [chatText, role]);
check(usage && usage.completion_tokens === chat.usage.completion_tokens && usage.prompt_tokens === chat.usage.prompt_tokens,
      "chat stream usage", usage);

// the client's own stream helper
const runner = client.chat.completions.stream({ model: "demo", messages, max_tokens: 12, temperature: 0 });
const final = await runner.finalChatCompletion();
check(final.choices[0].message.content === expect.chat, "chat.completions.stream helper", final.choices[0].message.content);

// errors reach the client as its typed errors
for (const [what, body, status] of [
  ["max_tokens 0", { model: "demo", prompt: "x", max_tokens: 0 }, 400],
  ["unknown model", { model: "nope", prompt: "x", max_tokens: 1 }, 404],
]) {
  try {
    await client.completions.create(body);
    check(false, `${what}: no error`);
  } catch (e) {
    check(e instanceof OpenAI.APIError && e.status === status && typeof e.error?.message === "string", what,
          [e.constructor.name, e.status, e.error]);
  }
}
try {
  await client.chat.completions.create({ model: "demo", messages, response_format: { type: "json_object" } });
  check(false, "json_object: no error");
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && /response_format/.test(e.message), "response_format json_object", e.message);
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
