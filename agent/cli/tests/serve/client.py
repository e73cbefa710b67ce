"""Drives `glm-agent serve` with the official OpenAI Python client.

Usage: client.py SCENARIO BASE_URL API_KEY
Each scenario asserts what an OpenAI client must see and prints one JSON line of findings.
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.request

import openai

SCENARIO, BASE, KEY = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0, timeout=120)
MODEL = client.models.list().data[0].id

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a time zone.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}
ASK = [{"role": "user", "content": "What is the weather in Beijing?"}]


def raw(path, body, key=KEY):
    """POSTs `body` (bytes or an object) and returns (status, parsed JSON)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        BASE + path,
        data=data,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def stream_answer(**kwargs):
    """Runs a streamed chat completion; returns (content, calls, finish, first delta kinds)."""
    content, calls, finish, order = "", {}, None, []
    for chunk in client.chat.completions.create(model=MODEL, stream=True, **kwargs):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.content:
            content += delta.content
            order.append("content")
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
            if call.id:
                entry["id"] = call.id
            if call.function and call.function.name:
                entry["name"] += call.function.name
                order.append("name")
            if call.function and call.function.arguments:
                entry["arguments"] += call.function.arguments
                order.append("arguments")
        if choice.finish_reason:
            finish = choice.finish_reason
    return content, [calls[i] for i in sorted(calls)], finish, order


def replayed():
    """Against recorded GLM-4 outputs (the replay engine), in the order the server reads them."""
    # 1. A tool call, unstreamed; the system prompt is kept next to the tools.
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Answer in one sentence."}] + ASK,
        tools=[WEATHER],
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.content is None, choice.message
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Beijing"}

    # 2. The same call streamed, written in a Markdown fence: the name comes first, the
    # arguments are JSON a client can load.
    content, calls, finish, order = stream_answer(messages=ASK, tools=[WEATHER])
    assert finish == "tool_calls" and content == "", (finish, content)
    assert [c["name"] for c in calls] == ["get_weather"], calls
    assert json.loads(calls[0]["arguments"]) == {"city": "Beijing"}
    assert order[0] == "name", order

    # 3. The answer after the tool's result.
    history = ASK + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 23}'},
    ]
    r = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == "It is 23 °C in Beijing."
    assert r.choices[0].message.tool_calls is None

    # 4. Text, then two calls in one answer: two tool_calls entries, streamed and not.
    r = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME])
    message = r.choices[0].message
    assert message.content == "I will check both.", message
    assert [c.function.name for c in message.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in message.tool_calls}) == 2
    content, calls, finish, _ = stream_answer(messages=ASK, tools=[WEATHER, TIME])
    assert content == "I will check both." and finish == "tool_calls"
    assert [json.loads(c["arguments"]) for c in calls] == [{"city": "Oslo"}, {"tz": "CET"}]

    # 5. A named tool_choice: the name is forced, the recording holds only the arguments.
    r = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    (call,) = r.choices[0].message.tool_calls
    assert call.function.name == "get_time" and json.loads(call.function.arguments) == {"tz": "UTC"}

    # 6. A streamed plain answer with stop strings and the usage chunk.
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ASK,
            stream=True,
            stop=["STOP"],
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Sunny, then", text
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"], finishes
    print(json.dumps({"ok": True}))


def errors():
    """Errors as OpenAI error objects, raised as the client's typed exceptions."""
    found = {}
    status, body = raw("/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"], body
    assert body["error"]["type"] == "invalid_request_error"
    status, body = raw(
        "/chat/completions", {"model": MODEL, "messages": ASK, "max_tokens": "ten"}
    )
    assert status == 400 and body["error"]["param"] == "max_tokens", body
    # A body over the 64 MiB bound is refused as an error object, without being read whole.
    status, body = raw("/chat/completions", b" " * (65 << 20))
    assert status == 413 and body["error"]["code"] == "body_too_large", (status, body)
    status, body = raw("/chat/completions", {"model": MODEL, "messages": "hi"})
    assert status == 400 and body["error"]["param"] == "messages", body
    try:
        client.chat.completions.create(model="gpt-4o", messages=ASK)
        raise AssertionError("an unknown model was served")
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found", e.body
    bad_tool = {"type": "function", "function": {"name": "get weather", "parameters": {}}}
    try:
        client.chat.completions.create(model=MODEL, messages=ASK, tools=[bad_tool])
        raise AssertionError("a bad tool name was accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == "tools[0].function.name", e.body
    try:
        client.chat.completions.create(
            model=MODEL, messages=ASK, tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
        raise AssertionError("a tool_choice naming no tool was accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == "tool_choice", e.body
    try:
        client.chat.completions.create(model=MODEL, messages=ASK, n=2)
        raise AssertionError("n = 2 was accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == "n"
    try:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x " * 3000}], max_tokens=4
        )
        raise AssertionError("a prompt over the context was accepted")
    except openai.BadRequestError as e:
        assert e.body["code"] == "context_length_exceeded", e.body
        assert "2048" in e.body["message"], e.body
        found["context_message"] = e.body["message"]
    try:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=10**6)
        raise AssertionError("a limit over the context was accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == "max_tokens" and "2048" in e.body["message"], e.body
    wrong = openai.OpenAI(base_url=BASE, api_key="wrong", max_retries=0)
    try:
        wrong.models.list()
        raise AssertionError("a wrong key was let in")
    except openai.AuthenticationError as e:
        assert e.status_code == 401
    print(json.dumps({"ok": True, **found}))


def choices():
    """tool_choice enforced while decoding a model that writes noise."""
    tools = [WEATHER, TIME]
    names = {"get_weather", "get_time"}
    seen = set()
    for seed in range(4):
        r = client.chat.completions.create(
            model=MODEL, messages=ASK, tools=tools, tool_choice="required",
            max_tokens=24, temperature=1.0, seed=seed,
        )
        calls = r.choices[0].message.tool_calls
        assert calls and calls[0].function.name in names, r
        seen.add(calls[0].function.name)
        r = client.chat.completions.create(
            model=MODEL, messages=ASK, tools=tools,
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            max_tokens=24, temperature=1.0, seed=seed,
        )
        assert r.choices[0].message.tool_calls[0].function.name == "get_time", r
        r = client.chat.completions.create(
            model=MODEL, messages=ASK, tools=tools, tool_choice="none",
            max_tokens=24, temperature=1.0, seed=seed,
        )
        assert r.choices[0].message.tool_calls is None, r
        assert r.choices[0].finish_reason in ("stop", "length")
    content, calls, finish, order = stream_answer(
        messages=ASK, tools=tools, tool_choice="required", max_tokens=24, seed=9
    )
    assert calls and calls[0]["name"] in names and order[0] == "name", (calls, order)
    print(json.dumps({"ok": True, "required_picked": sorted(seen)}))


def disconnect():
    """A client that leaves mid-stream: the server stops generating for it."""
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, stream=True, max_tokens=1900, temperature=0,
    )
    got = 0
    for _ in stream:
        # The first chunk (the assistant's role) comes before any token: the client leaves while
        # the model is generating.
        got += 1
        break
    time.sleep(0.5)
    stream.close()
    started = time.monotonic()
    r = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
    after = time.monotonic() - started
    assert r.choices[0].finish_reason in ("stop", "length")
    print(json.dumps({"ok": True, "chunks_read": got, "next_request_s": round(after, 2)}))


def concurrent():
    """Eight clients at once, streamed and not."""
    results, errors = [None] * 8, []

    def one(i):
        try:
            messages = [{"role": "user", "content": f"Client {i} asks."}]
            if i % 2:
                content, _, finish, _ = stream_answer(
                    messages=messages, max_tokens=16, temperature=0.7, seed=i
                )
            else:
                r = client.chat.completions.create(
                    model=MODEL, messages=messages, max_tokens=16, temperature=0.7, seed=i
                )
                finish = r.choices[0].finish_reason
                assert r.usage.completion_tokens <= 16
            results[i] = finish
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(f in ("stop", "length") for f in results), results
    print(json.dumps({"ok": True, "seconds": round(time.monotonic() - started, 2)}))


def conversation():
    """Four turns, each re-sending the whole conversation: turns 2-4 come from the cache."""
    messages = [
        {"role": "system", "content": "You are a careful assistant. " * 12},
        {"role": "user", "content": "Hello."},
    ]
    shares, previous = [], None
    for turn in range(4):
        r = client.chat.completions.create(
            model=MODEL, messages=messages, tools=[WEATHER], max_tokens=24,
            temperature=0.7, seed=turn,
        )
        usage = r.usage
        cached = usage.prompt_tokens_details.cached_tokens
        shares.append(cached / usage.prompt_tokens)
        if previous:
            # Token-exact: this prompt extends the previous one by everything generated for it
            # (the model's ids, which re-encoding its text would not give back).
            assert cached >= previous.prompt_tokens + previous.completion_tokens - 1, (
                turn, cached, previous)
        previous = usage
        message = r.choices[0].message
        echoed = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            echoed["tool_calls"] = [c.model_dump() for c in message.tool_calls]
        messages.append(echoed)
        for call in message.tool_calls or []:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "{}"})
        messages.append({"role": "user", "content": f"And {turn}?"})
    assert all(s >= 0.9 for s in shares[1:]), shares
    print(json.dumps({"ok": True, "cached_shares": [round(s, 3) for s in shares]}))


def completions():
    """Raw prompts: text with control tokens spelled out, and token ids."""
    r = client.completions.create(
        model=MODEL, prompt="[gMASK]<sop><|user|>\nhi<|assistant|>", max_tokens=5, temperature=0
    )
    assert r.usage.prompt_tokens == 2 + 1 + 3 + 1, r.usage
    assert r.choices[0].finish_reason in ("stop", "length")
    ids = [151331, 151333, 151336, 10, 104, 105, 151337]
    again = client.completions.create(model=MODEL, prompt=ids, max_tokens=5, temperature=0)
    assert again.choices[0].text == r.choices[0].text, (again, r)
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=MODEL, prompt=ids, max_tokens=5, temperature=0, stream=True
        )
        if c.choices
    )
    assert streamed == r.choices[0].text
    print(json.dumps({"ok": True}))


{
    "replayed": replayed,
    "errors": errors,
    "choices": choices,
    "disconnect": disconnect,
    "concurrent": concurrent,
    "conversation": conversation,
    "completions": completions,
}[SCENARIO]()
