#!/usr/bin/env python3
"""Writes function_calling.jsonl: function-calling cases in GLM-4's format, modelled on the
Berkeley Function Calling Leaderboard's simple, multiple and irrelevance categories.

    python3 evals/suites/make_function_calling.py

Each case offers functions, asks a question, and says which call (or no call) is right; the
`reference` output is what a model that passes writes (GLM-4: the function name on one line, the
JSON arguments, then <|observation|>).
"""
import json
import pathlib


def fn(name, description, props, required):
    return {
        "name": name,
        "description": description,
        "parameters": {"type": "object", "properties": props, "required": required},
    }


S = {"type": "string"}
I = {"type": "integer"}
N = {"type": "number"}
B = {"type": "boolean"}

F = {
    "get_weather": fn("get_weather", "Current weather for a city", {
        "city": {**S, "description": "City name"},
        "unit": {**S, "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
    }, ["city"]),
    "convert_currency": fn("convert_currency", "Convert an amount between currencies", {
        "amount": {**N, "description": "Amount to convert"},
        "from_currency": {**S, "description": "ISO code, e.g. USD"},
        "to_currency": {**S, "description": "ISO code, e.g. EUR"},
    }, ["amount", "from_currency", "to_currency"]),
    "search_flights": fn("search_flights", "Search flights between two airports on a date", {
        "origin": {**S, "description": "IATA code"},
        "destination": {**S, "description": "IATA code"},
        "date": {**S, "description": "YYYY-MM-DD"},
        "passengers": {**I, "description": "Number of passengers"},
    }, ["origin", "destination", "date"]),
    "calculate_bmi": fn("calculate_bmi", "Body mass index from weight and height", {
        "weight_kg": N, "height_m": N,
    }, ["weight_kg", "height_m"]),
    "send_email": fn("send_email", "Send an email", {
        "to": {**S, "description": "Recipient address"},
        "subject": S, "body": S,
    }, ["to", "subject", "body"]),
    "get_stock_price": fn("get_stock_price", "Latest price of a stock", {
        "symbol": {**S, "description": "Ticker symbol"},
    }, ["symbol"]),
    "set_timer": fn("set_timer", "Start a countdown timer", {
        "minutes": I, "label": S,
    }, ["minutes"]),
    "translate_text": fn("translate_text", "Translate text into another language", {
        "text": S, "target_language": {**S, "description": "Language name or ISO code"},
    }, ["text", "target_language"]),
    "compound_interest": fn("compound_interest", "Future value with compound interest", {
        "principal": N, "rate": {**N, "description": "Annual rate as a fraction, e.g. 0.05"},
        "years": I, "compounds_per_year": I,
    }, ["principal", "rate", "years"]),
    "find_restaurants": fn("find_restaurants", "Restaurants near a place", {
        "location": S, "cuisine": S, "open_now": B,
    }, ["location"]),
    "get_distance": fn("get_distance", "Driving distance between two places in km", {
        "start": S, "end": S,
    }, ["start", "end"]),
    "create_event": fn("create_event", "Add an event to the calendar", {
        "title": S, "date": {**S, "description": "YYYY-MM-DD"}, "time": {**S, "description": "HH:MM"},
    }, ["title", "date"]),
}

# (id, function, task, expected args (allowed values; "" marks optional))
SIMPLE = [
    ("weather_oslo", "get_weather", "What's the weather in Oslo right now?", {"city": ["Oslo"], "unit": ["celsius", ""]}),
    ("weather_nyc_f", "get_weather", "How warm is it in New York? Give it in Fahrenheit.", {"city": ["New York", "New York City", "NYC"], "unit": ["fahrenheit"]}),
    ("weather_tokyo_c", "get_weather", "Tell me Tokyo's weather in celsius.", {"city": ["Tokyo"], "unit": ["celsius"]}),
    ("currency_usd_eur", "convert_currency", "Convert 250 US dollars to euros.", {"amount": [250], "from_currency": ["USD"], "to_currency": ["EUR"]}),
    ("currency_gbp_jpy", "convert_currency", "How many yen is 1000 pounds sterling?", {"amount": [1000], "from_currency": ["GBP"], "to_currency": ["JPY"]}),
    ("currency_small", "convert_currency", "Convert 19.99 euros to Swiss francs.", {"amount": [19.99], "from_currency": ["EUR"], "to_currency": ["CHF"]}),
    ("flights_osl_lhr", "search_flights", "Find flights from OSL to LHR on 2026-03-14.", {"origin": ["OSL"], "destination": ["LHR"], "date": ["2026-03-14"], "passengers": [1, ""]}),
    ("flights_family", "search_flights", "Search flights for 4 people from JFK to SFO on 2026-07-01.", {"origin": ["JFK"], "destination": ["SFO"], "date": ["2026-07-01"], "passengers": [4]}),
    ("flights_cdg_fco", "search_flights", "Any flights CDG to FCO on 2026-12-20?", {"origin": ["CDG"], "destination": ["FCO"], "date": ["2026-12-20"], "passengers": [1, ""]}),
    ("bmi_basic", "calculate_bmi", "What's the BMI of someone who weighs 70 kg and is 1.75 m tall?", {"weight_kg": [70], "height_m": [1.75]}),
    ("bmi_tall", "calculate_bmi", "Compute BMI for 92.5 kg at 1.9 m.", {"weight_kg": [92.5], "height_m": [1.9]}),
    ("email_report", "send_email", "Email bob@example.com with subject 'Report' and body 'The report is attached.'", {"to": ["bob@example.com"], "subject": ["Report"], "body": ["The report is attached."]}),
    ("email_lunch", "send_email", "Send ana@example.org an email titled Lunch saying 'Noon at the usual place?'", {"to": ["ana@example.org"], "subject": ["Lunch"], "body": ["Noon at the usual place?"]}),
    ("stock_aapl", "get_stock_price", "What is Apple's stock price? Its ticker is AAPL.", {"symbol": ["AAPL"]}),
    ("stock_nvda", "get_stock_price", "Latest price for NVDA?", {"symbol": ["NVDA"]}),
    ("timer_tea", "set_timer", "Set a 4 minute timer labelled tea.", {"minutes": [4], "label": ["tea"]}),
    ("timer_plain", "set_timer", "Start a timer for 25 minutes.", {"minutes": [25], "label": ["", "pomodoro", "timer"]}),
    ("translate_fr", "translate_text", "Translate 'good morning' into French.", {"text": ["good morning"], "target_language": ["French", "fr"]}),
    ("translate_de", "translate_text", "How do you say 'thank you very much' in German? Use the translator.", {"text": ["thank you very much"], "target_language": ["German", "de"]}),
    ("interest_basic", "compound_interest", "What will 10000 grow to at 5% a year over 10 years, compounded yearly?", {"principal": [10000], "rate": [0.05], "years": [10], "compounds_per_year": [1, ""]}),
    ("interest_monthly", "compound_interest", "Future value of 2500 at 3% annual interest for 4 years compounded monthly.", {"principal": [2500], "rate": [0.03], "years": [4], "compounds_per_year": [12]}),
    ("restaurants_rome", "find_restaurants", "Find restaurants near the Pantheon in Rome.", {"location": ["Pantheon, Rome", "Pantheon Rome", "the Pantheon in Rome", "Pantheon"], "cuisine": [""], "open_now": [""]}),
    ("restaurants_sushi", "find_restaurants", "Sushi places open now in Bergen?", {"location": ["Bergen"], "cuisine": ["sushi"], "open_now": [True]}),
    ("distance_cities", "get_distance", "How far is it to drive from Oslo to Bergen?", {"start": ["Oslo"], "end": ["Bergen"]}),
    ("event_dentist", "create_event", "Put 'Dentist' in my calendar on 2026-02-03 at 09:30.", {"title": ["Dentist"], "date": ["2026-02-03"], "time": ["09:30"]}),
]

# (id, offered functions, right function, task, expected args)
MULTIPLE = [
    ("m_weather", ["get_weather", "get_stock_price", "set_timer"], "get_weather", "Is it raining in London?", {"city": ["London"], "unit": ["", "celsius"]}),
    ("m_stock", ["get_weather", "get_stock_price", "convert_currency"], "get_stock_price", "Check the price of MSFT.", {"symbol": ["MSFT"]}),
    ("m_currency", ["convert_currency", "compound_interest", "calculate_bmi"], "convert_currency", "Turn 80 Canadian dollars into US dollars.", {"amount": [80], "from_currency": ["CAD"], "to_currency": ["USD"]}),
    ("m_interest", ["convert_currency", "compound_interest", "get_stock_price"], "compound_interest", "If I invest 5000 at 7% for 20 years, what do I end up with (annual compounding)?", {"principal": [5000], "rate": [0.07], "years": [20], "compounds_per_year": [1, ""]}),
    ("m_bmi", ["calculate_bmi", "set_timer", "send_email"], "calculate_bmi", "I'm 1.62 m and 55 kg. What's my BMI?", {"weight_kg": [55], "height_m": [1.62]}),
    ("m_timer", ["calculate_bmi", "set_timer", "create_event"], "set_timer", "Remind me in 10 minutes, label it pasta.", {"minutes": [10], "label": ["pasta"]}),
    ("m_event", ["set_timer", "create_event", "send_email"], "create_event", "Schedule 'Team sync' on 2026-05-11.", {"title": ["Team sync"], "date": ["2026-05-11"], "time": [""]}),
    ("m_email", ["create_event", "send_email", "translate_text"], "send_email", "Write to ops@example.com, subject 'Disk full', body 'Server 3 is at 98%.'", {"to": ["ops@example.com"], "subject": ["Disk full"], "body": ["Server 3 is at 98%."]}),
    ("m_translate", ["send_email", "translate_text", "get_weather"], "translate_text", "Translate 'where is the station' to Spanish.", {"text": ["where is the station"], "target_language": ["Spanish", "es"]}),
    ("m_flights", ["search_flights", "get_distance", "find_restaurants"], "search_flights", "Flights from AMS to BCN on 2026-04-02 for 2 passengers.", {"origin": ["AMS"], "destination": ["BCN"], "date": ["2026-04-02"], "passengers": [2]}),
    ("m_distance", ["search_flights", "get_distance", "get_weather"], "get_distance", "Driving distance from Lyon to Paris?", {"start": ["Lyon"], "end": ["Paris"]}),
    ("m_restaurants", ["find_restaurants", "get_distance", "search_flights"], "find_restaurants", "Find Thai food in Trondheim.", {"location": ["Trondheim"], "cuisine": ["Thai"], "open_now": [""]}),
    ("m_weather_f", ["get_weather", "convert_currency", "get_distance"], "get_weather", "Weather in Chicago in fahrenheit please.", {"city": ["Chicago"], "unit": ["fahrenheit"]}),
    ("m_stock_tsla", ["get_stock_price", "compound_interest", "send_email"], "get_stock_price", "How is TSLA trading?", {"symbol": ["TSLA"]}),
    ("m_currency_sek", ["convert_currency", "get_stock_price", "translate_text"], "convert_currency", "What is 300 SEK in NOK?", {"amount": [300], "from_currency": ["SEK"], "to_currency": ["NOK"]}),
    ("m_event_time", ["create_event", "set_timer", "get_weather"], "create_event", "Add 'Flight home' on 2026-08-30 at 18:45 to my calendar.", {"title": ["Flight home"], "date": ["2026-08-30"], "time": ["18:45"]}),
    ("m_bmi_2", ["calculate_bmi", "compound_interest", "get_distance"], "calculate_bmi", "BMI for 80 kg, 1.8 m?", {"weight_kg": [80], "height_m": [1.8]}),
    ("m_translate_ja", ["translate_text", "find_restaurants", "set_timer"], "translate_text", "Translate 'see you tomorrow' into Japanese.", {"text": ["see you tomorrow"], "target_language": ["Japanese", "ja"]}),
    ("m_timer_2", ["set_timer", "get_stock_price", "create_event"], "set_timer", "Timer for 90 minutes.", {"minutes": [90], "label": [""]}),
    ("m_distance_2", ["get_distance", "search_flights", "convert_currency"], "get_distance", "How many km by road from Munich to Vienna?", {"start": ["Munich"], "end": ["Vienna"]}),
]

# (id, offered functions, task): nothing offered fits; the model should answer, not call.
IRRELEVANCE = [
    ("i_poem", ["get_weather", "get_stock_price"], "Write a haiku about autumn."),
    ("i_capital", ["convert_currency", "set_timer"], "What is the capital of Australia?"),
    ("i_math", ["send_email", "create_event"], "What is 17 times 23?"),
    ("i_history", ["search_flights", "get_distance"], "Who was the first person to walk on the moon?"),
    ("i_recipe", ["get_weather", "translate_text"], "Give me a simple pancake recipe."),
    ("i_joke", ["calculate_bmi", "get_stock_price"], "Tell me a joke about programmers."),
    ("i_definition", ["set_timer", "find_restaurants"], "What does 'photosynthesis' mean?"),
    ("i_advice", ["convert_currency", "compound_interest"], "How do I fall asleep faster?"),
    ("i_code", ["send_email", "get_distance"], "Write a Python function that reverses a string."),
    ("i_grammar", ["create_event", "get_weather"], "Is it 'fewer' or 'less' with countable nouns?"),
    ("i_summary", ["search_flights", "calculate_bmi"], "Summarise the plot of Hamlet in two sentences."),
    ("i_unit", ["get_stock_price", "set_timer"], "How many centimetres are in an inch?"),
    ("i_trivia", ["translate_text", "find_restaurants"], "How many legs does a spider have?"),
    ("i_name", ["get_weather", "send_email"], "Suggest a name for a grey cat."),
    ("i_science", ["get_distance", "compound_interest"], "Why is the sky blue?"),
]


def call_text(name, args):
    chosen = {}
    for key, allowed in args.items():
        first = [v for v in allowed if v != ""]
        if first and allowed[0] != "":
            chosen[key] = first[0]
    return name + "\n" + json.dumps(chosen, ensure_ascii=False) + "<|observation|>"


cases = []
for cid, name, task, args in SIMPLE:
    cases.append({"id": cid, "category": "simple", "task": task, "functions": [F[name]],
                  "check": {"kind": "calls", "calls": [{"name": name, "args": args}]},
                  "reference": [call_text(name, args)]})
for cid, offered, name, task, args in MULTIPLE:
    cases.append({"id": cid, "category": "multiple", "task": task, "functions": [F[n] for n in offered],
                  "check": {"kind": "calls", "calls": [{"name": name, "args": args}]},
                  "reference": [call_text(name, args)]})
for cid, offered, task in IRRELEVANCE:
    cases.append({"id": cid, "category": "irrelevance", "task": task, "functions": [F[n] for n in offered],
                  "check": {"kind": "no_call"},
                  "reference": ["I can answer that directly without these tools.<|user|>"]})

assert len({c["id"] for c in cases}) == len(cases)
out = pathlib.Path(__file__).with_name("function_calling.jsonl")
out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases))
print(f"{len(cases)} cases -> {out}")
