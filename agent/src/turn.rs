//! One user turn as a small state machine: open the turn, then step (budget check, generate,
//! decide) until a step finishes the turn.
//!
//! [`Turn`] holds the turn's state; [`Turn::decide`] turns a model output into a [`Step`]: an
//! observation to append and go on, or a [`Finish`]. Every way a turn ends goes through
//! [`Turn::finish`], and every prompt is built by [`Turn::append`], which extends the ids.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use glm_prompts::{
    DeclaredTools, Message, Parsed, Role, Segment, SpecialToken, ToolCall, Written, render_message,
    render_segments,
};
use glm_tools::{Recovery, ToolContext, ToolError};
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, Outcome};
use crate::approval::{self, Answer, By, Decision, Request, Ruled, Verdict};
use crate::context::{self, Fitted};
use crate::engine::{Cause, Collector, EngineError, GenerateRequest, Generation, Progress};
use crate::events::{Budget, End, Event};
use crate::guard::{self, LoopGuard, Seen};
use crate::session::Session;
use crate::sink::EventSink;

/// Compacting a conversation that no longer fits (a part of the turn kept in its own file).
#[path = "compact.rs"]
mod compact;

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// How a turn ends: why, the answer, and a message for an error event.
pub(crate) struct Finish {
    end: End,
    answer: Option<String>,
    message: String,
}

impl Finish {
    fn new(end: End, message: impl Into<String>) -> Self {
        Finish {
            end,
            answer: None,
            message: message.into(),
        }
    }

    fn bad_prompt(error: glm_prompts::Error) -> Self {
        Finish::new(End::BadInput, format!("cannot encode the prompt: {error}"))
    }
}

/// Observation turns to append after a call.
struct Observed {
    tool: String,
    /// The observation messages.
    messages: Vec<Message>,
    /// Files the call produced.
    files: Vec<PathBuf>,
    /// Whether the observation reports an error.
    error: bool,
    /// How long the tool took.
    took: Duration,
    /// Set when this was the same failure once too often: the turn ends after the observation.
    stop: Option<End>,
}

/// What a model step led to.
enum Step {
    /// The turn ends.
    Finish(Finish),
    /// The observation goes into the prompt and the model goes on.
    Observe(Observed),
}

/// What one generation gave.
struct Generated {
    ids: Vec<u32>,
    text: String,
}

/// The state of one user turn.
pub(crate) struct Turn<'t, 'a> {
    agent: &'t Agent<'a>,
    session: &'t mut Session,
    cancel: &'t CancellationToken,
    sink: &'t mut dyn EventSink,
    declared: DeclaredTools,
    stop_ids: Vec<u32>,
    ctx: ToolContext,
    started: Instant,
    /// Model turns taken in this user turn.
    steps: usize,
    /// Tokens generated in this user turn.
    generated: usize,
    /// The last failing call and how many times in a row it failed.
    last_failure: Option<(String, usize)>,
    /// Calls that succeeded, for the same call giving the same result again and again.
    guard: LoopGuard,
    /// Set once a budget ran out: the model has one last turn to answer.
    final_turn: Option<Budget>,
}

impl<'t, 'a> Turn<'t, 'a> {
    pub(crate) fn new(
        agent: &'t Agent<'a>,
        session: &'t mut Session,
        cancel: &'t CancellationToken,
        sink: &'t mut dyn EventSink,
    ) -> Self {
        let settings = &agent.settings;
        let ctx = ToolContext {
            cancel: cancel.child_token(),
            workdir: agent.workdir.clone(),
            timeout: Duration::from_secs(settings.tool_timeout_s.max(1)),
            max_observation_chars: settings.max_observation_chars,
        };
        Turn {
            declared: agent.tools.declared(),
            stop_ids: agent.encoder.special_ids().stop_ids(),
            agent,
            session,
            cancel,
            sink,
            ctx,
            started: Instant::now(),
            steps: 0,
            generated: 0,
            last_failure: None,
            guard: LoopGuard::new(settings.loop_warn, settings.loop_stop),
            final_turn: None,
        }
    }

    /// Runs the turn for the user's message to its end.
    pub(crate) async fn run(mut self, user: &str) -> Outcome {
        if let Err(e) = self.open(user).await {
            return self.finish(Finish::bad_prompt(e));
        }
        loop {
            if let Err(e) = self.check_budgets() {
                return self.finish(Finish::bad_prompt(e));
            }
            let generated = match self.step().await {
                Ok(g) => g,
                Err(finish) => return self.finish(finish),
            };
            match self.decide(generated).await {
                Step::Finish(finish) => return self.finish(finish),
                Step::Observe(observed) => {
                    let stop = observed.stop.clone();
                    if let Err(e) = self.observe(observed).await {
                        return self.finish(Finish::new(End::BadInput, e.to_string()));
                    }
                    if let Some(end) = stop {
                        return self.finish(Finish::new(end, ""));
                    }
                }
            }
        }
    }

    /// The model's first step only, parsed and reported (a call is not run).
    pub(crate) async fn first(mut self, user: &str) -> Result<Parsed, End> {
        self.open(user).await.map_err(|_| End::BadInput)?;
        let generated = self.step().await.map_err(|f| f.end)?;
        let parsed = glm_prompts::parse(&generated.text, &self.declared);
        self.sink.event(&parsed_event(1, &parsed));
        Ok(parsed)
    }

    /// Adds the user's message to the prompt (the whole conversation the first time) and
    /// opens the assistant's turn.
    async fn open(&mut self, user: &str) -> Result<(), glm_prompts::Error> {
        let message = Message::new(Role::User, user);
        if self.session.ids.is_empty() {
            self.session.messages.push(message);
            let segments = render_segments(&self.session.messages, false).0;
            self.session.ids = self.agent.encoder.encode(&segments)?;
        } else {
            self.push(message)?;
            self.tell_changed_tools().await?;
        }
        self.open_assistant();
        Ok(())
    }

    /// Before a model turn: when the offered tools changed (an MCP server's list), the model is
    /// told in a system turn listing every tool now offered, appended so that the prompt stays
    /// a prefix of the next one, and the parser learns the new names.
    async fn tell_changed_tools(&mut self) -> Result<(), glm_prompts::Error> {
        let tools = &self.agent.tools;
        let refreshed = tools.refresh().await;
        if !refreshed && !std::mem::take(&mut self.session.tools_changed) {
            return Ok(());
        }
        let specs = tools.specs();
        self.declared = tools.declared();
        self.sink.event(&Event::Tools {
            step: self.session.steps,
            tools: specs
                .iter()
                .map(|s| serde_json::to_value(s).unwrap_or_default())
                .collect(),
        });
        self.push(Message::system_with_tools(specs, String::new()))
    }

    /// Appends a message to the conversation and its rendered turn to the prompt ids.
    fn push(&mut self, message: Message) -> Result<(), glm_prompts::Error> {
        let segments = render_message(&message);
        self.session.messages.push(message);
        self.append(&segments.0)
    }

    /// Appends a rendered turn to the prompt ids, skipping its leading control token when the
    /// model already generated it (it stops on `<|observation|>` or `<|user|>`, which also open
    /// the next turn).
    fn append(&mut self, segments: &[Segment]) -> Result<(), glm_prompts::Error> {
        let encoder = &self.agent.encoder;
        let mut rest = segments;
        if let (Some(Segment::Control(first)), Some(&last)) =
            (segments.first(), self.session.ids.last())
            && encoder.special_ids().id(*first) == last
        {
            rest = &segments[1..];
        }
        let new = encoder.encode(rest)?;
        self.session.ids.extend(new);
        Ok(())
    }

    fn open_assistant(&mut self) {
        let assistant = self.agent.encoder.special_ids().id(SpecialToken::Assistant);
        self.session.ids.push(assistant);
    }

    /// Before each model turn: when a budget has run out, says so and gives the model one last
    /// turn to answer with what it has.
    fn check_budgets(&mut self) -> Result<(), glm_prompts::Error> {
        if self.final_turn.is_some() {
            return Ok(());
        }
        let settings = &self.agent.settings;
        let budget = if self.steps >= settings.max_steps {
            Budget::Steps
        } else if self.generated >= settings.max_generated_tokens {
            Budget::Tokens
        } else if settings
            .time_limit_s
            .is_some_and(|s| self.started.elapsed() >= Duration::from_secs(s))
        {
            Budget::Time
        } else {
            return Ok(());
        };
        let detail = budget.describe(settings);
        self.sink.event(&Event::Budget {
            budget,
            detail: detail.clone(),
        });
        self.final_turn = Some(budget);
        let note = format!("{detail} Answer now with what you have; do not call tools.");
        self.push(Message::new(Role::User, note))?;
        self.open_assistant();
        Ok(())
    }

    /// One model turn on the session's prompt; its ids join the prompt.
    async fn step(&mut self) -> Result<Generated, Finish> {
        let settings = &self.agent.settings;
        let remaining = settings
            .max_generated_tokens
            .saturating_sub(self.generated)
            .max(if self.final_turn.is_some() { 512 } else { 1 });
        let mut max_new = (settings.max_step_tokens as usize).min(remaining) as u32;
        if let Some(window) = settings.context_tokens {
            max_new = match self.fit(window, max_new)? {
                Some(room) => room,
                None => self.compact(window, max_new).await?,
            };
        }
        let generated = self.generate(max_new).await?;
        self.steps += 1;
        self.session.steps += 1;
        self.generated += generated.ids.len();
        self.session.ids.extend(&generated.ids);
        self.session.recorded = self.session.ids.len();
        Ok(generated)
    }

    /// Makes the prompt leave room for the answer in `window` tokens (cutting old tool outputs
    /// when it must); the room the turn has, `None` when the conversation must be compacted, or
    /// the end of the run when it cannot fit.
    fn fit(&mut self, window: usize, max_new: u32) -> Result<Option<u32>, Finish> {
        let before = self.session.ids.len();
        let fitted = context::fit(self.session, &self.agent.encoder, window, max_new)
            .map_err(Finish::bad_prompt)?;
        match fitted {
            Fitted::Fits(room) => Ok(Some(room)),
            Fitted::Cut { removed, room, .. } => {
                self.sink.event(&Event::Cut {
                    step: self.session.steps,
                    removed,
                    before,
                    after: self.session.ids.len(),
                    window,
                });
                Ok(Some(room))
            }
            Fitted::TooLong { .. } if context::can_compact(self.session) => Ok(None),
            Fitted::TooLong { tokens } => Err(too_long(tokens, before, window)),
        }
    }

    /// What the model's output leads to: an answer ends the turn, a call runs, a call that
    /// cannot run comes back as an error observation.
    async fn decide(&mut self, generated: Generated) -> Step {
        let step = self.session.steps;
        let observation = self
            .agent
            .encoder
            .special_ids()
            .id(SpecialToken::Observation);
        let called = generated.ids.last() == Some(&observation);
        let parsed = glm_prompts::parse(&generated.text, &self.declared);
        match parsed {
            Parsed::Answer(text) if !called || self.final_turn.is_some() => {
                self.session
                    .messages
                    .push(Message::new(Role::Assistant, text.clone()));
                self.sink.event(&Event::Answer {
                    step,
                    text: text.clone(),
                });
                let end = self.final_turn.map_or(End::Answered, End::Budget);
                Step::Finish(Finish {
                    end,
                    answer: Some(text),
                    message: String::new(),
                })
            }
            _ if self.final_turn.is_some() => Step::Finish(Finish::new(
                End::Budget(self.final_turn.unwrap_or(Budget::Steps)),
                "the model called a tool instead of answering in its last turn",
            )),
            Parsed::Answer(text) => {
                // It stopped for an observation, but the name is not a tool.
                let (header, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
                let name = header.trim().to_owned();
                let error = ToolError::UnknownTool {
                    name: name.clone(),
                    available: self.agent.tools.names().join(", "),
                };
                let written = Written {
                    header: header.to_owned(),
                    body: body.to_owned(),
                };
                let reason = error.to_string();
                Step::Observe(self.reject(written, name, reason, error))
            }
            Parsed::Malformed(bad) => {
                let error = ToolError::BadArguments {
                    tool: bad.name.clone(),
                    reason: bad.reason.clone(),
                };
                Step::Observe(self.reject(bad.written, bad.name, bad.reason, error))
            }
            Parsed::Call(call) => self.dispatch(call).await,
        }
    }

    /// A call that cannot run: it goes into history as written, the error back as an
    /// observation.
    fn reject(
        &mut self,
        written: Written,
        name: String,
        reason: String,
        error: ToolError,
    ) -> Observed {
        let key = format!("{}\n{}", written.header, written.body);
        self.session.messages.push(written.to_message());
        self.sink.event(&Event::Malformed {
            step: self.session.steps,
            name: name.clone(),
            reason,
        });
        let stop = self.count_failure(key, &name);
        Observed {
            tool: name,
            messages: vec![error.to_message()],
            files: Vec::new(),
            error: true,
            took: Duration::ZERO,
            stop,
        }
    }

    /// Runs a call through the registry.
    async fn dispatch(&mut self, call: ToolCall) -> Step {
        self.session.messages.push(call.written.to_message());
        let arguments = serde_json::to_value(&call.arguments).unwrap_or_default();
        let decision = self.approve(&call.name, &arguments).await;
        let verdict = decision.verdict;
        let reason = decision.reason.clone().unwrap_or_default();
        self.sink.event(&Event::Approval {
            step: self.session.steps,
            name: call.name.clone(),
            decision,
            arguments: (verdict != Verdict::Run).then_some(arguments),
        });
        match verdict {
            Verdict::Run => {}
            Verdict::Stop => {
                let message = format!("stopped at the call to `{}`", call.name);
                return Step::Finish(Finish::new(End::Interrupted, message));
            }
            Verdict::Refuse => {
                let error = ToolError::Failed {
                    tool: call.name.clone(),
                    message: format!("the call was not run: {reason}"),
                };
                let key = format!("{}\n{}", call.name, error);
                let stop = self.count_failure(key, &call.name);
                return Step::Observe(Observed {
                    tool: call.name,
                    messages: vec![error.to_message()],
                    files: Vec::new(),
                    error: true,
                    took: Duration::ZERO,
                    stop,
                });
            }
        }
        self.sink.event(&call_event(self.session.steps, &call));
        let tool_started = Instant::now();
        let result = self.agent.tools.call(&call, &self.ctx).await;
        let took = tool_started.elapsed();
        match result {
            Ok(output) => {
                self.last_failure = None;
                let mut messages: Vec<Message> =
                    output.observations.iter().map(|o| o.to_message()).collect();
                let stop = self.guard_loop(&call, &mut messages);
                Step::Observe(Observed {
                    tool: call.name,
                    files: output
                        .observations
                        .iter()
                        .flat_map(|o| o.files.clone())
                        .collect(),
                    messages,
                    error: false,
                    took,
                    stop,
                })
            }
            Err(_) if self.cancel.is_cancelled() => {
                Step::Finish(Finish::new(End::Interrupted, "interrupted"))
            }
            Err(error) if error.recovery() == Recovery::Fatal => Step::Finish(Finish::new(
                End::ToolFailed(error.to_string()),
                error.to_string(),
            )),
            Err(error) => {
                let arguments = serde_json::to_value(&call.arguments).unwrap_or_default();
                let stop = self.count_failure(format!("{}\n{arguments}", call.name), &call.name);
                Step::Observe(Observed {
                    tool: call.name,
                    messages: vec![error.to_message()],
                    files: Vec::new(),
                    error: true,
                    took,
                    stop,
                })
            }
        }
    }

    /// The decision on a call of `tool`: recorded (a replay), by the policy, or asked of the
    /// approver (refused when there is none). Waiting for an answer ends when the run is
    /// interrupted.
    async fn approve(&mut self, tool: &str, arguments: &serde_json::Value) -> Decision {
        let agent = self.agent;
        if let Some(recorded) = &agent.recorded {
            return recorded
                .next()
                .unwrap_or_else(|| Decision::new(Verdict::Run, By::Mode));
        }
        let read_only = agent.tools.is_read_only(tool);
        let approved = self.session.approved.contains(tool);
        match agent.settings.approval.rule(tool, read_only, approved) {
            Ruled::Decided(decision) => decision,
            Ruled::Ask => {
                let Some(approver) = &agent.approver else {
                    return approval::no_one_to_ask(tool);
                };
                let request = Request {
                    step: self.session.steps,
                    tool,
                    arguments,
                };
                let answer = tokio::select! {
                    answer = approver.ask(request) => answer,
                    () = self.cancel.cancelled() => Answer::Stop,
                };
                if answer == Answer::Always {
                    self.session.approved.insert(tool.to_owned());
                }
                approval::decision_of(answer)
            }
        }
    }

    /// Tells the model (in the call's last observation) that it repeats a call that keeps
    /// giving the same result; returns the end when it has done so once too often.
    fn guard_loop(&mut self, call: &ToolCall, messages: &mut [Message]) -> Option<End> {
        let arguments = serde_json::to_string(&call.arguments).unwrap_or_default();
        let result: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        match self.guard.see(&call.name, &arguments, &result.join("\n")) {
            Seen::Fine => None,
            Seen::Warn(count) => {
                if let Some(last) = messages.last_mut() {
                    last.content.push_str(&guard::warning(&call.name, count));
                }
                None
            }
            Seen::Stop(count) => Some(End::Repeated(format!(
                "the model made the same call to `{}` {count} times in the last {} calls, with the same result each time",
                call.name,
                guard::WINDOW
            ))),
        }
    }

    /// Counts consecutive identical failures; returns the end when the limit is reached.
    fn count_failure(&mut self, key: String, name: &str) -> Option<End> {
        let count = match &self.last_failure {
            Some((k, n)) if *k == key => *n + 1,
            _ => 1,
        };
        self.last_failure = Some((key, count));
        (count >= self.agent.settings.repeat_limit.max(1)).then(|| {
            End::Repeated(format!(
                "the model made the same failing call to `{name}` {count} times in a row"
            ))
        })
    }

    /// Appends observation turns (then any change of tools, and the next `<|assistant|>`) and
    /// reports them.
    async fn observe(&mut self, observed: Observed) -> Result<(), glm_prompts::Error> {
        let step = self.session.steps;
        let files: Vec<String> = observed
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        for message in observed.messages {
            let segments = render_message(&message);
            self.append(&segments.0)?;
            self.sink.event(&Event::Observation {
                step,
                name: observed.tool.clone(),
                metadata: message.metadata.clone(),
                text: message.content.clone(),
                files: files.clone(),
                error: observed.error,
                took_ms: millis(observed.took),
            });
            self.session.messages.push(message);
        }
        self.tell_changed_tools().await?;
        self.open_assistant();
        Ok(())
    }

    /// The one way a turn ends: an error event when something went wrong, the end event, and
    /// the outcome.
    fn finish(self, finish: Finish) -> Outcome {
        let Finish {
            end,
            answer,
            message,
        } = finish;
        if !message.is_empty() && !matches!(end, End::Answered | End::Budget(_)) {
            self.sink.event(&Event::Error { message });
        }
        self.sink.event(&Event::End {
            end: end.clone(),
            steps: self.steps,
            generated_tokens: self.generated,
            took_ms: millis(self.started.elapsed()),
        });
        Outcome {
            end,
            answer,
            steps: self.steps,
            generated_tokens: self.generated,
        }
    }

    /// One model turn, streamed; a broken stream or a dead engine gets two retries.
    async fn generate(&mut self, max_new: u32) -> Result<Generated, Finish> {
        let step = self.session.steps + 1;
        let hash = self.session.prefix_hash();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.stream(step, max_new, &hash).await {
                Ok(generated) => return Ok(generated),
                Err(Attempt::Interrupted) => {
                    return Err(Finish::new(End::Interrupted, "interrupted"));
                }
                Err(Attempt::OutOfTime) => {
                    let detail = Budget::Time.describe(&self.agent.settings);
                    return Err(Finish::new(End::Budget(Budget::Time), detail));
                }
                Err(Attempt::Failed(e)) => e,
            };
            // A broken stream or an engine restarting is tried again here; a server's failures
            // were already tried again, within one wait budget, by the engine client.
            let again = matches!(failure.cause, Cause::StreamEnded | Cause::Overloaded);
            if again && attempts < 3 {
                self.sink.event(&Event::Error {
                    message: format!("{} (retrying)", failure.message),
                });
                continue;
            }
            return Err(Finish::new(
                End::EngineFailed(failure.message.clone()),
                failure.message,
            ));
        }
    }

    /// Completes when the run's time limit and the last turn's grace are over (never without a
    /// limit): budgets are checked between turns, and this stops a generation that does not end.
    fn hard_deadline(&self) -> impl std::future::Future<Output = ()> + use<> {
        let limit = self.agent.settings.time_limit_s.map(Duration::from_secs);
        let at = limit
            .map(|l| tokio::time::Instant::from_std(self.started + l + l.min(LAST_TURN_GRACE)));
        async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        }
    }

    /// One attempt at a generation: deltas as they come, then the `model` event.
    async fn stream(
        &mut self,
        step: usize,
        max_new: u32,
        hash: &str,
    ) -> Result<Generated, Attempt> {
        let prompt = &self.session.ids;
        let request = GenerateRequest {
            prompt: prompt.clone(),
            sampling: self.agent.settings.sampling.clone(),
            max_new_tokens: max_new.max(1),
            stop_ids: self.stop_ids.clone(),
            starts_with: Vec::new(),
            structured: self.agent.structured(),
        };
        let mut stream = self.agent.engine.generate(request);
        let mut collector = Collector::default();
        let out_of_time = self.hard_deadline();
        tokio::pin!(out_of_time);
        let (reason, usage) = loop {
            let next = tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Attempt::Interrupted),
                () = &mut out_of_time => return Err(Attempt::OutOfTime),
                next = collector.next(&mut stream) => next.map_err(Attempt::Failed)?,
            };
            match next {
                Progress::Delta(text) if !text.is_empty() => {
                    self.sink.event(&Event::Delta { step, text });
                }
                Progress::Delta(_) => {}
                Progress::Finished { reason, usage } => break (reason, usage),
            }
        };
        if collector.ids().is_empty() && !collector.text().is_empty() {
            // A backend that reports text only: the ids come from the text, control tokens
            // recognised.
            let spelled = glm_prompts::Segments::from_spelled(collector.text()).0;
            collector.set_ids(self.agent.encoder.encode(&spelled).unwrap_or_default());
        }
        let Generation {
            ids,
            text,
            reason,
            usage,
        } = collector.into_generation(reason, usage);
        self.sink.event(&Event::Model {
            step,
            prompt_tokens: prompt.len(),
            prompt_delta: prompt.get(self.session.recorded..).unwrap_or(&[]).to_vec(),
            prefix_hash: hash.to_owned(),
            cached_tokens: usage.cached_prompt_tokens,
            ids: ids.clone(),
            text: text.clone(),
            finish: reason,
            generated_tokens: usage.generated_tokens.max(ids.len()),
            prefill_ms: millis(usage.prefill),
            decode_ms: millis(usage.decode),
        });
        Ok(Generated { ids, text })
    }
}

/// The end of a run whose prompt does not fit its window.
fn too_long(tokens: usize, before: usize, window: usize) -> Finish {
    Finish::new(
        End::BadInput,
        format!(
            "the prompt takes {tokens} tokens of the {window}-token context window{}, leaving less than {} for the answer: give less material (fewer or smaller documents), or a larger --context-tokens if the model and memory allow",
            if tokens < before {
                format!(" even with old tool outputs cut (it was {before})")
            } else {
                String::new()
            },
            context::MIN_ROOM
        ),
    )
}

/// Why one generation attempt did not finish.
enum Attempt {
    Interrupted,
    /// The run's time limit and the last turn's grace are over while the model generates.
    OutOfTime,
    Failed(EngineError),
}

/// The most time a run may go past its time limit: the last turn, in which the model answers
/// with what it has (as long as the limit itself, up to this). A generation still running
/// after it is stopped.
const LAST_TURN_GRACE: Duration = Duration::from_secs(60);

/// The event for what the model wrote: a call, a malformed call or an answer. The loop reports
/// calls this way before running them; [`Agent::first_turn`] reports its one parsed output.
pub fn parsed_event(step: usize, parsed: &Parsed) -> Event {
    match parsed {
        Parsed::Call(call) => call_event(step, call),
        Parsed::Malformed(bad) => Event::Malformed {
            step,
            name: bad.name.clone(),
            reason: bad.reason.clone(),
        },
        Parsed::Answer(text) => Event::Answer {
            step,
            text: text.clone(),
        },
    }
}

/// The event of a call about to run.
fn call_event(step: usize, call: &ToolCall) -> Event {
    Event::Call {
        step,
        name: call.name.clone(),
        arguments: serde_json::to_value(&call.arguments).unwrap_or_default(),
    }
}
