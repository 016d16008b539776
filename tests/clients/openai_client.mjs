// Drives clawgate with the official OpenAI Node SDK, unmodified: the gateway
// must "just work" for it (docs/openai-api.md#using-an-openai-sdk).  Usage:
//   node openai_client.mjs <baseURL ending in /v1> <token> <model>
// Prints one JSON line with what the SDK returned; exits non-zero on any
// mismatch or SDK error.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
const prompt = "the quick brown fox";

const fail = (why) => {
  console.error(`openai_client: ${why}`);
  process.exit(1);
};

const models = await client.models.list();
const ids = models.data.map((m) => m.id);
if (!ids.includes(model)) fail(`models.list lacks ${model}: ${ids}`);

const done = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: prompt }],
});
const text = done.choices[0].message.content;
if (done.object !== "chat.completion") fail(`object ${done.object}`);
if (!text || done.usage.total_tokens <= 0) fail(`empty answer ${JSON.stringify(done)}`);

const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: prompt }],
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = "";
let chunks = 0;
let usage = null;
let finish = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  const choice = chunk.choices[0];
  if (choice?.delta?.content) streamed += choice.delta.content;
  if (choice?.finish_reason) finish = choice.finish_reason;
}
if (streamed !== text) fail(`streamed "${streamed}" != "${text}"`);
if (finish !== "stop" || !usage || chunks < 3) fail(`stream end: ${finish} ${JSON.stringify(usage)} ${chunks}`);

let status = 0;
try {
  await client.chat.completions.create({ model: "no/such-model", messages: [{ role: "user", content: "x" }] });
} catch (err) {
  status = err.status;
}
if (status !== 404) fail(`unknown model gave ${status}`);

console.log(JSON.stringify({ text, streamed, chunks, usage, finish, models: ids.length }));
