"""Drives `glm-agent serve`'s Responses API with the official OpenAI Python client.

Usage: responses.py SCENARIO BASE_URL API_KEY
Each scenario asserts what a Responses client must see and prints one JSON line of findings.
"""

import json
import sys
import urllib.error
import urllib.request

import openai

SCENARIO, BASE, KEY = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=120)
MODEL = client.models.list().data[0].id

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TIME = {
    "type": "function",
    "name": "get_time",
    "description": "The time in a time zone.",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
}


def raw(body):
    """POSTs `body` to /v1/responses and returns (status, parsed JSON)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        BASE + "/responses",
        data=data,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def streamed(**kwargs):
    """A streamed response: (the event types in order, the completed response)."""
    types, last, seq = [], None, []
    with client.responses.create(model=MODEL, stream=True, **kwargs) as stream:
        for event in stream:
            types.append(event.type)
            seq.append(event.sequence_number)
            if event.type in ("response.completed", "response.incomplete"):
                last = event.response
    assert seq == list(range(len(seq))), seq
    return types, last


def replayed():
    """Against recorded GLM-4 outputs (the replay engine), in the order the server reads them."""
    # 1. A call, unstreamed: a function_call item with its call_id.
    r1 = client.responses.create(
        model=MODEL,
        instructions="Answer in one sentence.",
        input="What is the weather in Beijing?",
        tools=[WEATHER],
    )
    assert r1.status == "completed", r1
    (call,) = r1.output
    assert call.type == "function_call" and call.name == "get_weather", call
    assert json.loads(call.arguments) == {"city": "Beijing"}
    assert call.call_id.startswith("call_") and r1.id.startswith("resp_")
    assert r1.usage.input_tokens > 0 and r1.usage.output_tokens > 0

    # 2. Its result, by previous_response_id: the answer as output_text.
    r2 = client.responses.create(
        model=MODEL,
        instructions="Answer in one sentence.",
        previous_response_id=r1.id,
        input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 23}'}
        ],
        tools=[WEATHER],
    )
    assert r2.output_text == "It is 23 °C in Beijing.", r2
    assert r2.previous_response_id == r1.id

    # 3. Streamed: text, then two calls, as three items with their events in order.
    types, done = streamed(input="Weather and time in Oslo?", tools=[WEATHER, TIME])
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] == "response.completed", types
    assert types.count("response.output_item.added") == 3, types
    assert types.count("response.output_item.done") == 3, types
    assert "response.output_text.delta" in types and "response.function_call_arguments.done" in types
    kinds = [item.type for item in done.output]
    assert kinds == ["message", "function_call", "function_call"], kinds
    assert done.output[0].content[0].text == "I will check both."
    calls = done.output[1:]
    assert [json.loads(c.arguments) for c in calls] == [{"city": "Oslo"}, {"tz": "CET"}]

    # 4. Both results sent back out of order, streamed: the answer follows.
    outputs = [
        {"type": "function_call_output", "call_id": calls[1].call_id, "output": "12:00"},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
    ]
    types, after = streamed(previous_response_id=done.id, input=outputs, tools=[WEATHER, TIME])
    assert after.output_text == "Sunny at noon.", after
    assert after.usage.input_tokens > 0

    # 5. The whole conversation sent back as items, without previous_response_id (as codex does
    # with store: false): the same prompt, so the same recorded answer.
    items = [
        {"role": "user", "content": "Weather and time in Oslo?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "I will check both."}]},
    ] + [
        {"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments}
        for c in calls
    ] + outputs
    r5 = client.responses.create(model=MODEL, input=items, tools=[WEATHER, TIME], store=False)
    assert r5.output_text == "Sunny at noon.", r5

    # 6. A response kept with store: false cannot be followed.
    try:
        client.responses.create(model=MODEL, previous_response_id=r5.id, input="and then?")
        raise AssertionError("a response with store: false was followed")
    except openai.NotFoundError as e:
        assert e.body["param"] == "previous_response_id", e.body

    # 7. Errors name the field, in OpenAI's shape.
    for body, param in [
        ({"model": MODEL, "input": [{"type": "computer_call"}]}, "input[0].type"),
        ({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0].type"),
        ({"model": MODEL, "input": "x", "tool_choice": {"type": "function", "name": "nope"}, "tools": [WEATHER]}, "tool_choice"),
        ({"model": MODEL, "input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}, ], "previous_response_id": done.id}, "input[0].tool_call_id"),
        ({"model": MODEL, "input": 3}, None),
    ]:
        status, answer = raw(body)
        assert status == 400, (status, answer)
        if param:
            assert answer["error"]["param"] == param, answer
    print(json.dumps({"ok": True, "streamed_events": len(types)}))


{"replayed": replayed}[SCENARIO]()
