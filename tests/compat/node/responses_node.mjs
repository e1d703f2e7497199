// openai-node's Responses API (`client.responses`), as its README writes it.
// Usage: node responses_node.mjs CASE BASE_URL MODEL; prints JSON.
import OpenAI from "openai";
import { zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";

const [kase, baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-compat", maxRetries: 0 });
const Person = z.object({ name: z.string(), age: z.number().int() });
const input = "Say hello to the compatibility suite.";

const cases = {
  async create() {
    const response = await client.responses.create({ model, input });
    return { text: response.output_text, status: response.status, id: response.id };
  },
  // stream: true, iterated raw: the event types in order and their sequence numbers.
  async createStream() {
    const stream = await client.responses.create({ model, input, stream: true });
    const types = [];
    const sequence = [];
    let text = "";
    for await (const event of stream) {
      types.push(event.type);
      sequence.push(event.sequence_number);
      if (event.type === "response.output_text.delta") text += event.delta;
    }
    return { text, types, sequence };
  },
  async parse() {
    const response = await client.responses.parse({
      model, input, text: { format: zodTextFormat(Person, "person") },
    });
    return { parsed: response.output_parsed };
  },
  async stream() {
    const stream = client.responses.stream({
      model, input, text: { format: zodTextFormat(Person, "person") },
    });
    let deltas = "";
    stream.on("response.output_text.delta", (event) => { deltas += event.delta; });
    const final = await stream.finalResponse();
    return { deltas, parsed: final.output_parsed, status: final.status };
  },
  // Two turns chained by previous_response_id: the second sees the first (echo answers the last input).
  async previous() {
    const first = await client.responses.create({ model, input });
    const second = await client.responses.create({
      model, input: "And again.", previous_response_id: first.id,
    });
    const items = await client.responses.inputItems.list(second.id);
    return { first: first.output_text, second: second.output_text, items: items.data.length };
  },
};

console.log(JSON.stringify(await cases[kase]()));
