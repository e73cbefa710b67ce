//! Where `chat` reads messages: on a terminal, a line editor (arrows, Home/End, Ctrl-R, history
//! kept between sessions in the state folder); otherwise plain lines from standard input.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::config::Configurer;
use rustyline::error::ReadlineError;

/// What one read gave.
pub enum Line {
    /// A message (trimmed; may be empty).
    Text(String),
    /// End of input (Ctrl-D at an empty prompt, or a closed pipe).
    End,
    /// Ctrl-C at the prompt.
    Interrupted,
}

/// The messages' source.
pub enum Input {
    /// A terminal: the editor and the history file.
    Editor(Box<DefaultEditor>, Option<PathBuf>),
    /// A pipe or a file, or a terminal whose output goes elsewhere (the prompt, when there is
    /// one, on stderr).
    Lines {
        /// Whether to show `> ` before each read.
        prompt: bool,
    },
}

/// The most messages kept in the history file.
const HISTORY: usize = 1000;

/// `$XDG_STATE_HOME/glm-agent/chat_history`, else `~/.local/state/glm-agent/chat_history`;
/// none without a home.
fn history_path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var(k).ok().filter(|d| !d.is_empty());
    var("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|state| state.join("glm-agent/chat_history"))
}

impl Input {
    /// The editor when standard input and output are a terminal (it draws on standard output);
    /// plain lines otherwise, with a prompt on stderr when `terminal` (standard input is one).
    pub fn open(terminal: bool) -> Input {
        if !terminal || !std::io::stdout().is_terminal() {
            return Input::Lines { prompt: terminal };
        }
        let Ok(mut editor) = DefaultEditor::new() else {
            return Input::Lines { prompt: true };
        };
        let _ = editor.set_max_history_size(HISTORY);
        let _ = editor.set_history_ignore_dups(true);
        let path = history_path();
        if let Some(path) = &path {
            // A first session has no history yet.
            let _ = editor.load_history(path);
        }
        Input::Editor(Box::new(editor), path)
    }

    /// Reads the next message (blocking).
    pub fn read(&mut self) -> Line {
        match self {
            Input::Editor(editor, _) => match editor.readline("> ") {
                Ok(line) => {
                    let line = line.trim().to_owned();
                    if !line.is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Line::Text(line)
                }
                Err(ReadlineError::Interrupted) => Line::Interrupted,
                Err(_) => {
                    // Ctrl-D: the prompt's line ends before the command does.
                    let _ = writeln!(std::io::stderr());
                    Line::End
                }
            },
            Input::Lines { prompt } => {
                if *prompt {
                    eprint!("> ");
                    let _ = std::io::stderr().flush();
                }
                let mut line = String::new();
                match std::io::stdin().lock().read_line(&mut line) {
                    Ok(0) | Err(_) => Line::End,
                    Ok(_) => Line::Text(line.trim().to_owned()),
                }
            }
        }
    }

    /// Saves the history (private to the user) for the next session.
    pub fn close(self) {
        let Input::Editor(mut editor, Some(path)) = self else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = glm_agent::trace::private_dir(dir);
        }
        if editor.save_history(&path).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
}
