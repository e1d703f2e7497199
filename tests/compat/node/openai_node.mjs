// openai-node, as its README writes it. Usage: node openai_node.mjs CASE BASE_URL MODEL; prints JSON.
import OpenAI from "openai";
import { zodFunction, zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";

const [kase, baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-compat", maxRetries: 0 });
const Person = z.object({ name: z.string(), age: z.number().int() });
const Weather = z.object({ city: z.string(), unit: z.string() });
const messages = [{ role: "user", content: "Say hello to the compatibility suite." }];

const cases = {
  async create() {
    const completion = await client.chat.completions.create({ model, messages });
    return { content: completion.choices[0].message.content };
  },
  // The quickstart loop: chunk.choices[0].delta.content on every chunk.
  async quickstart() {
    const stream = await client.chat.completions.create({ model, messages, stream: true });
    let text = "";
    for await (const chunk of stream) {
      text += chunk.choices[0].delta.content || "";
    }
    return { content: text };
  },
  async usage() {
    const stream = await client.chat.completions.create({
      model, messages, stream: true, stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    return {
      empty: chunks.filter((c) => c.choices.length === 0).length,
      lastUsage: chunks.at(-1).usage,
      created: chunks.every((c) => Number.isInteger(c.created)),
    };
  },
  async parse() {
    const completion = await client.chat.completions.parse({
      model, messages, response_format: zodResponseFormat(Person, "person"),
    });
    return { parsed: completion.choices[0].message.parsed };
  },
  async stream() {
    const runner = client.chat.completions.stream({
      model, messages, response_format: zodResponseFormat(Person, "person"),
    });
    let text = "";
    runner.on("content.delta", ({ delta }) => { text += delta; });
    const final = await runner.finalChatCompletion();
    return { text, parsed: final.choices[0].message.parsed };
  },
  async tools() {
    const completion = await client.chat.completions.parse({
      model,
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools: [zodFunction({ name: "get_weather", parameters: Weather })],
      tool_choice: "required",
    });
    const call = completion.choices[0].message.tool_calls[0];
    return { name: call.function.name, parsed: call.function.parsed_arguments };
  },
  async embeddings() {
    const plain = await client.embeddings.create({ model, input: ["hello", "world"], encoding_format: "float" });
    const packed = await client.embeddings.create({ model, input: ["hello", "world"] });
    return { float: plain.data.map((d) => d.embedding), base64: packed.data.map((d) => d.embedding) };
  },
};

console.log(JSON.stringify(await cases[kase]()));
