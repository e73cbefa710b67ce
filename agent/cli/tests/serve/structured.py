"""Structured outputs from `glm-agent serve` on a tiny model with random weights: only enforcement
while decoding can make its answers valid JSON that matches the schema. Driven the way each
client's users ask for it: the openai client's response_format (chat) and text.format
(Responses), LangChain's with_structured_output and the Agents SDK's output_type.

Usage: structured.py BASE_URL API_KEY
Prints one JSON line of findings.
"""

import asyncio
import json
import sys
from typing import Literal

import openai
from pydantic import BaseModel, Field

BASE, KEY = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=300)
MODEL = client.models.list().data[0].id


class Weather(BaseModel):
    """The weather in a city."""

    city: str = Field(max_length=12)
    celsius: int = Field(ge=-50, le=50)
    sky: Literal["clear", "cloudy", "rain"]


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "celsius": {"type": "integer", "minimum": -50, "maximum": 50},
        "sky": {"enum": ["clear", "cloudy", "rain"]},
    },
    "required": ["city", "celsius", "sky"],
    "additionalProperties": False,
}
ASK = "What is the weather in Oslo? Answer as JSON."
findings = {}


def check(weather, where):
    """Asserts `weather` (a dict) matches SCHEMA."""
    assert set(weather) == {"city", "celsius", "sky"}, (where, weather)
    assert isinstance(weather["city"], str) and len(weather["city"]) <= 12, (where, weather)
    assert isinstance(weather["celsius"], int) and -50 <= weather["celsius"] <= 50, (where, weather)
    assert weather["sky"] in ("clear", "cloudy", "rain"), (where, weather)
    findings[where] = weather


# Without a format the same model writes no JSON: what follows is the enforcement's doing.
free = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": ASK}], max_tokens=60)
try:
    json.loads(free.choices[0].message.content or "")
    raise AssertionError("the random model wrote JSON unasked")
except ValueError:
    pass

# Chat completions, json_schema, unstreamed and streamed.
r = client.chat.completions.create(
    model=MODEL,
    messages=[{"role": "user", "content": ASK}],
    response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}},
    max_tokens=200,
)
assert r.choices[0].finish_reason == "stop", r
check(json.loads(r.choices[0].message.content), "chat")
text = "".join(
    c.choices[0].delta.content or ""
    for c in client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": ASK}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA}},
        max_tokens=200,
        stream=True,
        temperature=1.0,
        seed=7,
    )
    if c.choices
)
check(json.loads(text), "chat streamed")

# json_object: any JSON object, with a tool offered beside it (the model may call instead).
r = client.chat.completions.create(
    model=MODEL,
    messages=[{"role": "user", "content": ASK}],
    response_format={"type": "json_object"},
    tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    max_tokens=300,
    seed=3,
)
message = r.choices[0].message
if message.tool_calls:
    assert isinstance(json.loads(message.tool_calls[0].function.arguments), dict)
    findings["json_object"] = "called get_weather"
else:
    assert isinstance(json.loads(message.content), dict), message
    findings["json_object"] = json.loads(message.content)

# The Responses API's text.format, and the client's parse helper.
r = client.responses.create(
    model=MODEL,
    input=ASK,
    text={"format": {"type": "json_schema", "name": "weather", "schema": SCHEMA, "strict": True}},
    max_output_tokens=200,
)
check(json.loads(r.output_text), "responses")
parsed = client.responses.parse(model=MODEL, input=ASK, text_format=Weather, max_output_tokens=200)
check(parsed.output_parsed.model_dump(), "responses.parse")

# LangChain's default structured output.
from langchain_openai import ChatOpenAI  # noqa: E402

llm = ChatOpenAI(model=MODEL, base_url=BASE, api_key=KEY, max_retries=0, max_tokens=200)
check(llm.with_structured_output(Weather).invoke(ASK).model_dump(), "langchain")

# The Agents SDK's output_type, on its default (Responses) model.
from agents import Agent, ModelSettings, Runner, set_default_openai_client, set_tracing_disabled  # noqa: E402

set_tracing_disabled(True)
set_default_openai_client(openai.AsyncOpenAI(base_url=BASE, api_key=KEY, max_retries=0), use_for_tracing=False)
agent = Agent(
    name="weather",
    instructions="Report the weather.",
    model=MODEL,
    output_type=Weather,
    model_settings=ModelSettings(max_tokens=200),
)
result = asyncio.run(Runner.run(agent, ASK))
check(result.final_output.model_dump(), "agents sdk")

print(json.dumps(findings))
