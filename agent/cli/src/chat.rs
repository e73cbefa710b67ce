//! `glm-agent chat`: a conversation with the model and the tools, turn after turn.

use std::io::IsTerminal;

use clap::Args;
use glm_agent::End;
use glm_agent::exit::ExitStatus;
use tokio_util::sync::CancellationToken;

use crate::cli::{CmdResult, Failure};
use crate::display::Display;
use crate::input::{Input, Line};
use crate::run::{
    Prepared, RunOptions, Shown, new_agent, prepare, show_outcome, tool_names, trace_writer,
};

/// Options of `chat`.
#[derive(Debug, Args)]
#[command(
    after_help = "Type a message and press Enter. /reset starts a new conversation, \
/exit (or Ctrl-D, or end of input) leaves. On a terminal the line can be edited, Up and Down \
walk the history (kept in $XDG_STATE_HOME/glm-agent/chat_history, else \
~/.local/state/glm-agent/chat_history), Ctrl-R searches it; Ctrl-C stops a turn in progress, \
and at the prompt leaves. An engine failure drops that message and the chat goes on.\n\nExample:\n  glm-agent chat --tools python"
)]
pub struct ChatArgs {
    #[command(flatten)]
    options: RunOptions,
}

/// `chat`.
/// Ctrl-C cancels the turn in `current`; with no turn running it stops the servers and exits.
fn watch_ctrl_c(
    current: std::sync::Arc<std::sync::Mutex<Option<CancellationToken>>>,
    servers: std::sync::Arc<glm_tools::mcp::McpServers>,
) {
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            let running = current.lock().ok().and_then(|c| c.clone());
            match running {
                Some(token) => token.cancel(),
                None => {
                    servers.kill();
                    std::process::exit(i32::from(ExitStatus::Interrupted.code()))
                }
            }
        }
    });
}

pub fn chat(mut args: ChatArgs) -> CmdResult {
    let parent = crate::run::resumed_parent(&mut args.options)?;
    let runtime = tokio::runtime::Runtime::new().map_err(Failure::bad_input)?;
    let result = runtime.block_on(async move {
        let options = &args.options;
        let Prepared {
            opened,
            encoder,
            mut settings,
            registry,
            trace_dir,
            servers,
            effective_tokens,
            python_setup,
        } = prepare(options).await?;
        if let Some(parent) = &parent {
            settings = parent.settings(settings, &options.looping, &options.sampling)?;
        }
        let mut display =
            Display::new(options.json, tool_names(&registry)).warn_past(effective_tokens);
        let work = options.work.open("chat")?;
        let agent = new_agent(&opened, registry, encoder, settings, &work, options.json);
        let documents = crate::documents::read_documents(&options.files)?;
        let mut shown = Shown {
            trace: trace_writer(options, &trace_dir),
            display: &mut display,
            documents: documents
                .iter()
                .map(crate::documents::Document::record)
                .collect(),
        };
        // The documents go before the first message that stays in the conversation.
        let mut documents = Some(documents);
        let mut session = match &parent {
            Some(parent) => parent.session(&agent, &opened.model)?,
            None => agent.new_session(),
        };
        let tty = std::io::stdin().is_terminal();
        // Ctrl-C stops the turn in progress; at the prompt it leaves.
        let current = std::sync::Arc::new(std::sync::Mutex::new(None::<CancellationToken>));
        let servers = std::sync::Arc::new(servers);
        watch_ctrl_c(current.clone(), servers.clone());
        if tty {
            eprintln!("glm-agent chat: /reset starts over, /exit leaves.");
        }
        let mut input = Input::open(tty);
        let mut started = false;
        let mut status = ExitStatus::Success;
        loop {
            let line = match tokio::task::block_in_place(|| input.read()) {
                Line::Text(line) => line,
                Line::End => break,
                Line::Interrupted => {
                    status = ExitStatus::Interrupted;
                    break;
                }
            };
            let line = line.as_str();
            match line {
                "" => continue,
                "/exit" | "/quit" => break,
                "/reset" => {
                    session = agent.new_session();
                    eprintln!("(new conversation)");
                    continue;
                }
                _ => {}
            }
            let cancel = CancellationToken::new();
            if let Ok(mut c) = current.lock() {
                *c = Some(cancel.clone());
            }
            let snapshot = session.clone();
            // `@path` words put those files before the message.
            let mut attached = match crate::documents::at_paths(line) {
                Ok(named) => named,
                Err(failure) => {
                    if let Some(e) = failure.error {
                        eprintln!("error: {e:#}; the message was not sent");
                    }
                    continue;
                }
            };
            if !options.json {
                for doc in &attached {
                    eprintln!("(attached {}, {} bytes)", doc.name, doc.bytes);
                }
            }
            if let Some(docs) = &documents {
                attached.splice(0..0, docs.iter().cloned());
            }
            let composed = crate::documents::with_documents(line, &attached);
            let line = composed.as_str();
            if !started {
                let start = match &parent {
                    Some(parent) => parent.start_event(&agent, line, &session),
                    None => agent.start_event(line),
                };
                glm_agent::EventSink::event(&mut shown, &start);
                started = true;
            }
            let outcome = agent.turn(&mut session, line, &cancel, &mut shown).await;
            if let Ok(mut c) = current.lock() {
                *c = None;
            }
            show_outcome(&outcome, shown.display, options.json)?;
            status = outcome.end.exit_status();
            if !matches!(outcome.end, End::Interrupted | End::EngineFailed(_)) {
                // In the conversation now; a dropped message takes them again next time.
                documents = None;
            }
            match &outcome.end {
                End::ToolFailed(_) => break,
                End::Interrupted => {
                    // Ctrl-C stops the turn; the conversation goes on without it.
                    session = snapshot;
                    eprintln!("(interrupted; that message is dropped)");
                    status = ExitStatus::Success;
                }
                End::EngineFailed(_) if tty => {
                    // The conversation stays; the person may send the message again.
                    session = snapshot;
                    eprintln!(
                        "(the engine failed; that message is dropped, send it again to retry)"
                    );
                }
                End::EngineFailed(_) => break,
                _ => {}
            }
        }
        input.close();
        drop(agent);
        servers.shutdown().await;
        if let Some(setup) = python_setup {
            setup.settle().await;
        }
        work.finish(options.json);
        match status {
            ExitStatus::Success | ExitStatus::Budget => Ok(()),
            other => Err(Failure::silent(other)),
        }
    });
    // What still runs in the background (the Python runtime's install or compile, which is
    // written atomically) does not hold the exit up.
    runtime.shutdown_background();
    result
}
