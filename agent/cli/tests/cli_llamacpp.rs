//! `--engine openai:` against real servers: llama.cpp's server (the `llama-server` API of the
//! PyPI package `xllamacpp`, installed by `tests/llamacpp/fetch.sh` into the cache folder)
//! serving the tiny GLM-4 checkpoint converted to GGUF, and `glm-agent serve` on the embedded
//! engine. The ids each gives must equal the embedded engine's on the same weights, a run's
//! tool call must go through, and every step after the first must find its prompt cached.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use glm_prompts::tiny::TINY_VOCAB_SIZE;
use glm_test_support::checkpoint::{Tensors, weights, write_checkpoint};
use serde_json::Value;

use crate::cli_serve::{Server, tiny_model};

/// The pinned packages' folder, for PYTHONPATH.
fn packages() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        glm_test_support::fetched(
            &format!("{}/tests/llamacpp/fetch.sh", env!("CARGO_MANIFEST_DIR")),
            "python3 and pip",
        )
    })
}

fn script(name: &str) -> String {
    format!("{}/tests/llamacpp/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Converts a Qwen2-layout folder (what glm-agent maps GLM-4 to) to one f32 GGUF file.
fn to_gguf(model: &Path, out: &Path) {
    let done = Command::new("python3")
        .arg(script("to_gguf.py"))
        .args([model, out])
        .env("PYTHONPATH", packages())
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "to_gguf.py failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// A server process and the address it printed (`... on http://ADDRESS`).
pub(crate) struct Listening {
    child: Child,
    pub(crate) base: String,
    log: PathBuf,
}

impl Listening {
    /// Starts `command` and waits for the line naming its address on stdout, or on stderr when
    /// `on_stderr`; both streams are kept in `log`.
    pub(crate) fn start(mut command: Command, log: &Path, on_stderr: bool) -> Listening {
        let file = std::fs::File::create(log).unwrap();
        let mut child = if on_stderr {
            command.stdout(file).stderr(Stdio::piped())
        } else {
            command.stderr(file).stdout(Stdio::piped())
        }
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
        let stream: Box<dyn std::io::Read + Send> = match on_stderr {
            true => Box::new(child.stderr.take().unwrap()),
            false => Box::new(child.stdout.take().unwrap()),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let mut copy = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = writeln!(copy, "{line}");
                if let Some(at) = line.find("on http://") {
                    let url = line[at + 3..].split_whitespace().next().unwrap_or("");
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(base) => Listening {
                child,
                base,
                log: log.to_owned(),
            },
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not start:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }
}

impl Listening {
    /// Everything the server wrote so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The peak resident memory of its process so far, in MB (`VmHWM`).
    pub(crate) fn peak_mb(&self) -> f64 {
        glm_test_support::peak_rss_of(self.child.id()).unwrap_or(0) as f64 / (1 << 20) as f64
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// llama.cpp's server on `gguf`.
fn llama_server(gguf: &Path, log: &Path) -> Listening {
    let mut command = Command::new("python3");
    command
        .arg(script("serve.py"))
        .arg(gguf)
        .args(["0", "8192"])
        .env("PYTHONPATH", packages());
    Listening::start(command, log, false)
}

/// `glm-agent serve` on the embedded engine with `model`.
/// The tiny model behind llama.cpp's server (as GGUF) and behind a glm-agent serve, both
/// running, with the folder holding their files.
fn llama_and_serve(mapped: &Path) -> (tempfile::TempDir, Listening, Server) {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("glm-4-tiny.gguf");
    to_gguf(mapped, &gguf);
    let llama = llama_server(&gguf, &dir.path().join("llama.log"));
    let served = glm_agent_server(mapped, dir.path());
    (dir, llama, served)
}

fn glm_agent_server(model: &Path, dir: &Path) -> Server {
    let model = model.to_str().unwrap();
    let args = ["--isq", "none", "--max-model-len", "8192", "--model", model];
    Server::start(&args, dir)
}

/// Runs glm-agent with a config file of no settings, offline.
fn glm_agent(args: &[&str], dir: &Path) -> Output {
    glm_test_support::glm_agent_command()
        .args(args)
        .env("GLM_AGENT_CONFIG", dir.join("config.toml"))
        .env("GLM_AGENT_OFFLINE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `generate --json` with `engine_args`: the generated ids, and the whole answer.
fn generate(engine_args: &[&str], prompt: &str, dir: &Path) -> (Vec<u64>, Value) {
    let mut args = vec!["generate"];
    args.extend(engine_args);
    args.extend([
        "--prompt-ids",
        prompt,
        "--greedy",
        "--json",
        "--max-tokens",
        "24",
    ]);
    let out = glm_agent(&args, dir);
    assert!(
        out.status.success(),
        "generate {engine_args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids = value["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    (ids, value)
}

/// The ids `llama-server` generates on the tiny checkpoint are the embedded engine's, and so
/// are those `glm-agent serve` passes on; both report what they served from their cache.
#[test]
fn servers_generate_the_embedded_engines_ids() {
    let mapped = tiny_model();
    let (dir, llama, served) = llama_and_serve(mapped);
    let tokenizer = mapped.join("tokenizer.json");
    let tokenizer = tokenizer.to_str().unwrap();
    let model = mapped.to_str().unwrap();

    for prompt in [
        "151331,151333,151336,10,104,105,151337",
        "151331,151333,151336,10,9703,3020,77,151337",
    ] {
        // A first turn, then a second that extends it by what was generated and a new turn, as
        // an agent's next step does.
        let (first, _) = generate(&["--model", model, "--isq", "none"], prompt, dir.path());
        assert_eq!(first.len(), 24);
        let mut next: Vec<String> = prompt.split(',').map(str::to_owned).collect();
        next.extend(first.iter().map(u64::to_string));
        next.extend(["151336", "10", "104", "151337"].map(str::to_owned));
        let next = next.join(",");
        let (second, _) = generate(&["--model", model, "--isq", "none"], &next, dir.path());
        for base in [llama.base.as_str(), served.base()] {
            let engine = format!("openai:{base}");
            let remote = ["--engine", &engine, "--tokenizer", tokenizer];
            let (ids, _) = generate(&remote, prompt, dir.path());
            assert_eq!(ids, first, "{engine} on {prompt}");
            let (ids, value) = generate(&remote, &next, dir.path());
            assert_eq!(ids, second, "{engine}, second turn after {prompt}");
            // The server kept the first turn's prompt and output.
            let before = (prompt.split(',').count() + first.len()) as u64;
            let cached = value["usage"]["cached_prompt_tokens"].as_u64().unwrap();
            println!(
                "{engine}: {cached} of {} prompt tokens cached",
                next.split(',').count()
            );
            assert!(cached + 1 >= before, "{engine}: {value}");
        }
    }
}

/// A checkpoint that after `<|assistant|>` writes `python\n1+2<|observation|>`.
fn python_caller(dir: &Path) {
    chain_model(dir, "python\n1+2", 151_338);
}

/// A Qwen2-layout checkpoint whose next token depends on the last one only, written so that
/// after `<|assistant|>` it writes `text` byte by byte (each byte once), then `last`: attention
/// and MLP outputs are kept small, the embedding of each token of that chain is a unit vector,
/// and the output row of its successor points the same way. The rest of the weights are random.
fn chain_model(dir: &Path, text: &str, last: u32) {
    const HIDDEN: usize = 64;
    const HEADS: usize = 4;
    const KV: usize = 2;
    const FFN: usize = 96;
    let head_dim = HIDDEN / HEADS;
    let chain: Vec<u32> = std::iter::once(151_337)
        .chain(text.bytes().map(u32::from))
        .chain(std::iter::once(last))
        .collect();
    let mut embed = weights(1, TINY_VOCAB_SIZE * HIDDEN, 0.02);
    let mut head = weights(2, TINY_VOCAB_SIZE * HIDDEN, 0.02);
    for (n, pair) in chain.windows(2).enumerate() {
        let v = weights(100 + n as u64, HIDDEN, 1.0);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let (from, to) = (pair[0] as usize, pair[1] as usize);
        for i in 0..HIDDEN {
            embed[from * HIDDEN + i] = v[i] / norm;
            head[to * HIDDEN + i] = 10.0 * v[i] / norm;
        }
    }
    let mut tensors = Tensors::new();
    let mut put = |name: String, shape: Vec<usize>, values: Vec<f32>| {
        tensors.insert(name, (shape, values));
    };
    put(
        "model.embed_tokens.weight".into(),
        vec![TINY_VOCAB_SIZE, HIDDEN],
        embed,
    );
    put("lm_head.weight".into(), vec![TINY_VOCAB_SIZE, HIDDEN], head);
    put("model.norm.weight".into(), vec![HIDDEN], vec![1.0; HIDDEN]);
    for layer in 0..2u64 {
        let p = format!("model.layers.{layer}.");
        let seed = 10 + layer * 20;
        let kv = KV * head_dim;
        for (name, rows, cols, scale, n) in [
            ("self_attn.q_proj", HIDDEN, HIDDEN, 0.1, 0),
            ("self_attn.k_proj", kv, HIDDEN, 0.1, 1),
            ("self_attn.v_proj", kv, HIDDEN, 0.1, 2),
            ("self_attn.o_proj", HIDDEN, HIDDEN, 0.01, 3),
            ("mlp.gate_proj", FFN, HIDDEN, 0.1, 4),
            ("mlp.up_proj", FFN, HIDDEN, 0.1, 5),
            ("mlp.down_proj", HIDDEN, FFN, 0.01, 6),
        ] {
            put(
                format!("{p}{name}.weight"),
                vec![rows, cols],
                weights(seed + n, rows * cols, scale),
            );
            if name.ends_with("q_proj") || name.ends_with("k_proj") || name.ends_with("v_proj") {
                put(
                    format!("{p}{name}.bias"),
                    vec![rows],
                    weights(seed + 10 + n, rows, 0.1),
                );
            }
        }
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            put(format!("{p}{norm}.weight"), vec![HIDDEN], vec![1.0; HIDDEN]);
        }
    }
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_model().join("config.json")).unwrap())
            .unwrap();
    write_checkpoint(dir, &tensors, config);
}

/// llama.cpp's server sends a token that ends inside a UTF-8 character only with the next one,
/// under the next one's id: the held ids are recovered from the text, so a model writing
/// accented letters and emoji byte by byte gives the same ids through it as in-process.
#[test]
fn ids_held_back_inside_a_character_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bytes");
    // c3 a9, f0 9f 98 80, e4 b8 ad: each byte one token, then <|user|>.
    chain_model(&model, "\u{e9}\u{1f600}\u{4e2d}!", 151_336);
    let gguf = dir.path().join("bytes.gguf");
    to_gguf(&model, &gguf);
    let llama = llama_server(&gguf, &dir.path().join("llama.log"));
    let tokenizer = model.join("tokenizer.json");
    let prompt = "151331,151333,151336,10,104,105,151337";
    let (want, _) = generate(
        &["--model", model.to_str().unwrap(), "--isq", "none"],
        prompt,
        dir.path(),
    );
    let bytes: Vec<u64> = "\u{e9}\u{1f600}\u{4e2d}!".bytes().map(u64::from).collect();
    assert_eq!(want[..bytes.len()], bytes[..], "the chain model: {want:?}");
    let engine = format!("openai:{}", llama.base);
    let remote = [
        "--engine",
        &engine,
        "--tokenizer",
        tokenizer.to_str().unwrap(),
    ];
    let (got, value) = generate(&remote, prompt, dir.path());
    assert_eq!(got, want, "{value}");
    assert!(
        value["text"]
            .as_str()
            .unwrap()
            .starts_with("\u{e9}\u{1f600}\u{4e2d}!"),
        "{value}"
    );
}

/// The model turns of a run's trace.
fn model_events(traces: &Path) -> Vec<Value> {
    let trace = std::fs::read_dir(traces)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap_or_else(|| panic!("no trace in {}", traces.display()));
    std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "model")
        .collect()
}

/// A run without a recording: the model calls python through each server, gets the result,
/// calls again until the step budget ends the run; every turn's ids are the embedded engine's,
/// and each turn after the first finds all that came before its new turn cached on the server.
#[test]
fn a_run_calls_a_tool_through_each_server_with_its_prompt_cached() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("python-caller");
    python_caller(&model);
    let gguf = dir.path().join("python-caller.gguf");
    to_gguf(&model, &gguf);
    let llama = llama_server(&gguf, &dir.path().join("llama.log"));
    let served = glm_agent_server(&model, dir.path());
    let tokenizer = model.join("tokenizer.json");
    let tokenizer = tokenizer.to_str().unwrap();
    let model_arg = model.to_str().unwrap();

    let run = |name: &str, engine_args: &[&str]| -> Vec<Value> {
        let traces = dir.path().join(name);
        let mut args = vec![
            "run",
            "Add one and two.",
            "--tools",
            "python",
            "--max-steps",
            "3",
        ];
        args.extend(["--temperature", "0", "--max-step-tokens", "32", "--json"]);
        args.extend(["--trace-dir", traces.to_str().unwrap()]);
        args.extend(engine_args);
        let out = glm_agent(&args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Calls and no answer: the step budget ends the run.
        assert_eq!(out.status.code(), Some(3), "{name}: {stderr}");
        model_events(&traces)
    };
    let embedded = run("embedded", &["--model", model_arg, "--isq", "none"]);
    assert!(embedded.len() >= 3, "{embedded:?}");
    for event in &embedded {
        assert_eq!(event["text"], "python\n1+2<|observation|>", "{event}");
    }
    for (name, base) in [
        ("llama.cpp", llama.base.as_str()),
        ("glm-agent", served.base()),
    ] {
        let engine = format!("openai:{base}");
        let events = run(name, &["--engine", &engine, "--tokenizer", tokenizer]);
        assert_eq!(events.len(), embedded.len(), "{name}");
        for (step, (got, want)) in events.iter().zip(&embedded).enumerate() {
            assert_eq!(got["ids"], want["ids"], "{name} step {step}");
            assert_eq!(got["text"], want["text"], "{name} step {step}");
            assert_eq!(
                got["prompt_tokens"], want["prompt_tokens"],
                "{name} step {step}"
            );
            let prompt = got["prompt_tokens"].as_u64().unwrap();
            let cached = got["cached_tokens"].as_u64().unwrap_or(0);
            println!("{name} step {step}: {cached} of {prompt} prompt tokens cached");
            if step > 0 {
                // Everything before this step's new turn: the last prompt and its output (but
                // the last generated token, which llama.cpp never ran through the model).
                let last = &events[step - 1];
                let before = last["prompt_tokens"].as_u64().unwrap()
                    + last["ids"].as_array().unwrap().len() as u64;
                assert!(
                    cached + 1 >= before,
                    "{name} step {step}: {cached} of {prompt} cached, {before} before its turn"
                );
            }
        }
    }
}

/// A run resumed through a server that still holds its conversation: the continued first
/// prompt is the recorded ids and the new turn, and the server serves the recorded part from its
/// prefix cache (glm-agent serve and llama.cpp's server).
#[test]
fn a_resumed_run_finds_its_conversation_in_the_servers_cache() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("python-caller");
    python_caller(&model);
    let gguf = dir.path().join("python-caller.gguf");
    to_gguf(&model, &gguf);
    let llama = llama_server(&gguf, &dir.path().join("llama.log"));
    let served = glm_agent_server(&model, dir.path());
    let tokenizer = model.join("tokenizer.json");
    let tokenizer = tokenizer.to_str().unwrap();
    for (name, base) in [
        ("llama.cpp", llama.base.as_str()),
        ("glm-agent", served.base()),
    ] {
        let engine = format!("openai:{base}");
        let traces = dir.path().join(name);
        let traces = traces.to_str().unwrap();
        let run = |task: &str, more: &[&str]| {
            let mut args = vec!["run", task, "--engine", &engine, "--tokenizer", tokenizer];
            args.extend(["--temperature", "0", "--max-step-tokens", "32", "--json"]);
            args.extend(["--max-steps", "2", "--trace-dir", traces]);
            args.extend(more);
            let out = glm_agent(&args, dir.path());
            // Calls until the step budget ends the run.
            assert_eq!(
                out.status.code(),
                Some(3),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out
        };
        run("Add one and two.", &["--tools", "python"]);
        let out = run("Now add three.", &["--continue"]);
        let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let resumed = events[0]["resumed"].as_array().unwrap().len() as u64;
        let first = events.iter().find(|e| e["event"] == "model").unwrap();
        let cached = first["cached_tokens"].as_u64().unwrap_or(0);
        println!(
            "{name}: the resumed first step found {cached} of its {resumed} recorded tokens cached"
        );
        assert!(resumed > 20, "{name}: {}", events[0]);
        assert!(
            cached >= resumed - 1,
            "{name}: {cached} of {resumed} cached"
        );
    }
}

/// A JSON answer asked of `glm-agent serve` in front of llama.cpp's server (its `json_schema`)
/// and in front of another glm-agent serve (the whole structure, calls beside the JSON) holds a
/// random model to the schema; what llama.cpp cannot enforce is refused, not trusted.
#[test]
fn structured_answers_are_enforced_through_llama_cpp_and_another_serve() {
    let mapped = tiny_model();
    let (dir, llama, served) = llama_and_serve(mapped);
    let tokenizer = mapped.join("tokenizer.json");
    let check = r#"
import json, sys, openai
base, tools_ok = sys.argv[1], sys.argv[2] == "yes"
client = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=300)
model = client.models.list().data[0].id
schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99},
          "ok": {"type": "boolean"}}, "required": ["n", "ok"], "additionalProperties": False}
ask = [{"role": "user", "content": "Give n and ok."}]
# llama.cpp's grammar lets up to 22 characters of whitespace stand between JSON tokens, which a
# random model takes: room for them.
r = client.chat.completions.create(model=model, messages=ask, max_tokens=600, seed=1,
    response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
answer = json.loads(r.choices[0].message.content)
assert r.choices[0].finish_reason == "stop", r
assert set(answer) == {"n", "ok"} and 0 <= answer["n"] <= 99 and isinstance(answer["ok"], bool), answer
tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
try:
    r = client.chat.completions.create(model=model, messages=ask, max_tokens=100, tools=tools,
        response_format={"type": "json_object"})
    m = r.choices[0].message
    assert tools_ok, m
    assert m.tool_calls or isinstance(json.loads(m.content), dict), m
except openai.BadRequestError as e:
    assert not tools_ok and "tool_choice none" in e.body["message"], e.body
print(json.dumps(answer))
"#;
    for (name, base, tools_ok) in [
        ("llama.cpp", llama.base.as_str(), "no"),
        ("glm-agent", served.base(), "yes"),
    ] {
        let front_dir = dir.path().join(name);
        std::fs::create_dir_all(&front_dir).unwrap();
        let engine = format!("openai:{base}");
        let front = Server::start(
            &[
                "--engine",
                &engine,
                "--tokenizer",
                tokenizer.to_str().unwrap(),
            ],
            &front_dir,
        );
        let out = Command::new("python3")
            .args(["-c", check, front.base(), tools_ok])
            .env("PYTHONPATH", crate::cli_responses::python_clients())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            front.log()
        );
        println!("{name}: {}", String::from_utf8_lossy(&out.stdout).trim());
    }
    // A run held to a schema through llama.cpp: the JSON alone (no tools), no leading newline.
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"], "additionalProperties": false}"#,
    )
    .unwrap();
    let engine = format!("openai:{}", llama.base);
    let args = [
        "run",
        "Pick n.",
        "--engine",
        &engine,
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--output-schema",
        schema.to_str().unwrap(),
        "--tools",
        "none",
        "--max-step-tokens",
        "300",
        "--approval",
        "auto",
    ];
    let out = glm_agent(&args, dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(answer["n"].as_u64().is_some_and(|n| n <= 9), "{answer}");
    // With a tool beside it, llama.cpp cannot choose: refused before the run, with what to do.
    let mut with_tools = args.to_vec();
    with_tools[9] = "python";
    let out = glm_agent(&with_tools, dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tools none"), "{stderr}");
}
